//! The `sonprop` binary.

use std::io::IsTerminal;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    let bar = stderr.is_terminal();
    let code = sonprop_simulator::cli::run(&args, &mut stdout.lock(), &mut stderr.lock(), bar);
    std::process::exit(code);
}
