//! `rudp keygen`: make a static key pair.

use std::path::PathBuf;

/// `rudp keygen`'s arguments.
#[derive(Debug, clap::Args)]
pub struct KeygenArgs {
    /// Where to write the private key; refused if it exists.
    pub file: PathBuf,
    /// Replace FILE if it exists.
    #[arg(long)]
    pub force: bool,
}

impl KeygenArgs {
    /// Writes the key pair; returns the process exit status.
    pub fn run(self) -> i32 {
        crate::secure_args::keygen(&self.file, self.force)
    }
}
