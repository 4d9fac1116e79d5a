//! `rudp decrypt`: a capture with its version-3 packets in clear.

use std::path::PathBuf;

/// `rudp decrypt`'s arguments.
#[derive(Debug, clap::Args)]
pub struct DecryptArgs {
    /// The key log (`RUDP_KEYLOG=FILE` on either end).
    #[arg(long, value_name = "FILE")]
    pub keylog: PathBuf,
    /// The capture to read.
    pub input: PathBuf,
    /// The capture to write (replaced whole at the end).
    pub output: PathBuf,
}

impl DecryptArgs {
    /// Decrypts the capture; returns the process exit status.
    pub fn run(self) -> i32 {
        let DecryptArgs {
            keylog,
            input,
            output,
        } = self;
        match crate::decrypt::decrypt(&keylog, &input, &output) {
            Ok(s) => {
                eprintln!(
                    "decrypted {} of {} sealed version-3 packets ({} packets in all) into {}",
                    s.decrypted,
                    s.sealed,
                    s.packets,
                    output.display()
                );
                0
            }
            Err(e) => {
                eprintln!("error: {e}");
                1
            }
        }
    }
}
