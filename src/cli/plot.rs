//! `rudp plot`: draw a trace as an SVG.

use std::path::PathBuf;

/// `rudp plot`'s arguments.
#[derive(Debug, clap::Args)]
pub struct PlotArgs {
    /// The trace file.
    pub trace: PathBuf,
    /// The SVG to write (default: the trace's name with .svg).
    #[arg(short = 'o', long = "out", value_name = "FILE.svg")]
    pub out: Option<PathBuf>,
    /// Which connection, by its ID as in the trace (default: the first).
    #[arg(long)]
    pub conn: Option<String>,
}

impl PlotArgs {
    /// Draws the trace; returns the process exit status.
    pub fn run(self) -> i32 {
        let PlotArgs { trace, out, conn } = self;
        let out = out.unwrap_or_else(|| trace.with_extension("svg"));
        let drawn = crate::plot::read_trace(&trace, conn.as_deref())
            .and_then(|series| crate::plot::draw(&series, &out).map(|()| series));
        match drawn {
            Ok(series) => {
                eprintln!(
                    "wrote {} (connection {}: {} packets sent, {} lost; at most {} points drawn per series)",
                    out.display(),
                    series.conn,
                    series.sent.len(),
                    series.lost.len(),
                    crate::plot::MAX_POINTS,
                );
                if series.skipped > 0 {
                    eprintln!(
                        "warning: skipped {} event(s) with values out of range or not finite",
                        series.skipped
                    );
                }
                0
            }
            Err(e) => {
                eprintln!("error: {e}");
                1
            }
        }
    }
}
