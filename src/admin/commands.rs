//! `instagift admin set-password`: on a terminal it prompts twice without
//! echo; otherwise it reads one line from standard input, so scripts and
//! containers can set it (`echo "$PW" | instagift admin set-password`).

use crate::api::users::{MAX_PASSWORD, MIN_PASSWORD};
use crate::args::AdminCommand;
use crate::db;
use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;
use std::process::Command;

/// Runs an `instagift admin …` subcommand.
pub fn run(db_path: &Path, cmd: &AdminCommand) -> Result<(), String> {
    match cmd {
        AdminCommand::SetPassword => set_password(db_path),
    }
}

fn set_password(db_path: &Path) -> Result<(), String> {
    let new_password = if std::io::stdin().is_terminal() {
        let first = prompt("New operator password: ")?;
        let again = prompt("Type it again: ")?;
        if first != again {
            return Err("the two passwords differ; nothing was changed".into());
        }
        first
    } else {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| format!("cannot read standard input: {e}"))?;
        without_line_end(line)
    };
    let chars = new_password.chars().count();
    if chars < MIN_PASSWORD {
        return Err(format!(
            "the password must have at least {MIN_PASSWORD} characters"
        ));
    }
    if chars > MAX_PASSWORD {
        return Err(format!(
            "the password must have at most {MAX_PASSWORD} characters"
        ));
    }
    let mut conn = db::open_writer(db_path)?;
    super::session::set_password(&mut conn, &new_password)?;
    println!("Operator password set. Every admin session was logged out.");
    Ok(())
}

/// Only the line break is removed: spaces may belong to the password.
fn without_line_end(mut line: String) -> String {
    while line.ends_with(['\n', '\r']) {
        line.pop();
    }
    line
}

/// Asks on the terminal with echo off (through `stty`, so no extra crate);
/// echo comes back even if the user presses Ctrl-C.
fn prompt(label: &str) -> Result<String, String> {
    eprint!("{label}");
    let _ = std::io::stderr().flush();
    let stty = |arg: &str| {
        Command::new("stty")
            .arg(arg)
            .status()
            .is_ok_and(|s| s.success())
    };
    let hidden = stty("-echo");
    if hidden {
        let _ = ctrlc::set_handler(|| {
            let _ = Command::new("stty").arg("echo").status();
            std::process::exit(130);
        });
    }
    let mut line = String::new();
    let read = std::io::stdin().lock().read_line(&mut line);
    if hidden {
        stty("echo");
        eprintln!();
    }
    read.map_err(|e| format!("cannot read the password: {e}"))?;
    Ok(without_line_end(line))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_line_end_is_removed() {
        assert_eq!(without_line_end(" pass word \r\n".into()), " pass word ");
        assert_eq!(without_line_end("x".into()), "x");
    }
}
