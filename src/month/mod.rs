//! The month service (docs/month.md): a client sends a number from 1 to 12,
//! the server answers with that month's name.
//!
//! Each request and each answer is one rudp message. The server's first
//! message on a connection is the [`GREETING`]. An answer is either a
//! month's name or a line starting with `error: ` that says why the request
//! was rejected; the request `0` is answered with [`GOODBYE`] and ends the
//! session. Answers come in request order (rudp keeps order), so answer *n*
//! always belongs to request *n*.

pub mod client;
pub mod server;

/// The first message of every connection.
pub const GREETING: &str = "Welcome to the rudp month service. Send a number from 1 to 12 \
and I answer with that month's name; send 0 to end the session.";

/// The answer to `0`, after which the server closes the connection.
pub const GOODBYE: &str = "goodbye";

/// Prefix of every rejection.
pub const ERROR_PREFIX: &str = "error: ";

/// Longest request the server reads as a number; longer ones are rejected
/// without looking further.
pub const MAX_REQUEST_LEN: usize = 32;

pub const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

/// What a request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// A month's name.
    Month(&'static str),
    /// `0`: end the session.
    End,
    /// Not a number from 0 to 12; the reason, to send after [`ERROR_PREFIX`].
    Rejected(String),
}

impl Answer {
    /// The message the server sends for this answer.
    pub fn to_message(&self) -> String {
        match self {
            Answer::Month(m) => (*m).to_string(),
            Answer::End => GOODBYE.to_string(),
            Answer::Rejected(why) => format!("{ERROR_PREFIX}{why}"),
        }
    }
}

/// Reads one request. Surrounding white space (a line's `\r`, stray
/// spaces) is ignored; otherwise only plain decimal digits are numbers:
/// `7`, `07` and `12` are, `+7`, `0x7`, `7.0` and `seven` are not.
pub fn answer(request: &[u8]) -> Answer {
    const HINT: &str = "send a number from 1 to 12 (0 ends the session)";
    if request.len() > MAX_REQUEST_LEN {
        return Answer::Rejected(format!(
            "request too long ({} bytes): {HINT}",
            request.len()
        ));
    }
    let Ok(text) = std::str::from_utf8(request) else {
        return Answer::Rejected(format!("request is not UTF-8 text: {HINT}"));
    };
    let text = text.trim();
    if text.is_empty() {
        return Answer::Rejected(format!("empty request: {HINT}"));
    }
    if !text.bytes().all(|b| b.is_ascii_digit()) {
        return Answer::Rejected(format!("{} is not a number: {HINT}", quote(text)));
    }
    // All digits and at most 32 of them: only the value can be out of range.
    match text.parse::<u64>() {
        Ok(0) => Answer::End,
        Ok(n @ 1..=12) => Answer::Month(MONTHS[n as usize - 1]),
        _ => Answer::Rejected(format!("{text} is out of range: {HINT}")),
    }
}

/// Quotes user input for an error line: printable, one line, short.
fn quote(text: &str) -> String {
    let head: String = text.chars().take(20).collect();
    let more = if text.chars().nth(20).is_some() {
        "..."
    } else {
        ""
    };
    format!("'{}{more}'", rudp_core::text::printable(&head))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_twelve_months() {
        for (i, m) in MONTHS.iter().enumerate() {
            assert_eq!(answer((i + 1).to_string().as_bytes()), Answer::Month(m));
        }
        assert_eq!(answer(b" 07\r"), Answer::Month("July"));
        assert_eq!(answer(b"0"), Answer::End);
    }

    #[test]
    fn bad_input_is_rejected_with_a_reason() {
        let long = vec![b'1'; 5000];
        let cases: &[(&[u8], &str)] = &[
            (b"13", "13 is out of range"),
            (b"0x1", "'0x1' is not a number"),
            (b"abc", "'abc' is not a number"),
            (b"", "empty request"),
            (b"-1", "'-1' is not a number"),
            (b"99999999999999999999999", "out of range"),
            (&long, "request too long (5000 bytes)"),
            (b"\xff\xfe", "not UTF-8"),
            (b"a\x1bb", "'a\\u{1b}b' is not a number"),
        ];
        for (req, expect) in cases {
            let a = answer(req);
            let Answer::Rejected(why) = &a else {
                panic!("{req:?} was accepted as {a:?}");
            };
            assert!(why.contains(expect), "{why:?} lacks {expect:?}");
            let msg = a.to_message();
            assert!(msg.starts_with(ERROR_PREFIX) && !msg.contains('\n'));
        }
    }
}
