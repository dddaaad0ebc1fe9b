//! Names the commit the binary is built from, for `sonprop --version`: `git rev-parse` at
//! build time, or `unknown` where the source is not a git checkout (or git is not installed).

use std::path::PathBuf;
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    Command::new("git")
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
}

fn main() {
    let commit = git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=SONPROP_COMMIT={commit}");
    // Built again when a commit moves HEAD or the branch it names. Only paths that exist are
    // watched: cargo runs a build script whose watched path is missing on every build.
    println!("cargo:rerun-if-changed=build.rs");
    if let Some(dir) = git(&["rev-parse", "--git-dir"]).map(PathBuf::from) {
        for name in ["HEAD", "refs/heads", "packed-refs"] {
            let path = dir.join(name);
            if path.exists() {
                println!("cargo:rerun-if-changed={}", path.display());
            }
        }
    }
}
