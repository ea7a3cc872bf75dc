//! `herald produce` reading many lines from standard input shows progress
//! on standard error when that is a terminal, and nothing extra when it is
//! not. The terminal is a real pseudo-terminal: util-linux's `script` runs
//! the command with its standard error on one (standard input from a file,
//! standard output to a file, as a person piping a file would).

use std::io::Write;
use std::process::{Command, Stdio};

use herald_test_support::{read_all, Tansu};

const N: usize = 20_000;

fn lines(dir: &tempfile::TempDir) -> std::path::PathBuf {
    let path = dir.path().join("lines.txt");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    for i in 0..N {
        writeln!(f, "{{\"n\":{i}}}").unwrap();
    }
    f.flush().unwrap();
    path
}

#[test]
fn progress_on_a_terminal_and_nothing_extra_in_a_pipe() {
    let tansu = Tansu::start();
    tansu.create_topic("progress", 2);
    tansu.create_topic("quiet", 2);
    let dir = tempfile::tempdir().unwrap();
    let input = lines(&dir);
    let out = dir.path().join("out.txt");
    let herald = env!("CARGO_BIN_EXE_herald");

    // Standard error on a pseudo-terminal.
    let cmd = format!(
        "{herald} produce -b {} -t progress -X linger.ms=20 < {} > {}",
        tansu.bootstrap(),
        input.display(),
        out.display()
    );
    let run = Command::new("timeout")
        .args(["120", "script", "-q", "-e", "-c", &cmd, "/dev/null"])
        .stdin(Stdio::null())
        .output()
        .expect("script (util-linux)");
    let tty = String::from_utf8_lossy(&run.stdout).to_string();
    assert!(
        run.status.success(),
        "{tty}{}",
        String::from_utf8_lossy(&run.stderr)
    );
    // The summary: every record sent and acknowledged, none failed, a rate.
    let last = tty
        .rsplit("\r\x1b[2K")
        .next()
        .unwrap_or_default()
        .trim_end()
        .to_string();
    assert!(
        last.starts_with("sent 20,000 · acked 20,000 · failed 0 · ") && last.contains(" rec/s · "),
        "summary: {last:?}\nall: {tty:?}"
    );
    // Drawn in place while it ran (the first draw is at the start), then
    // the summary: each erasing the line before it.
    assert!(tty.matches("\r\x1b[2Ksent ").count() >= 2, "{tty:?}");
    // Standard output is untouched: one TOPIC[PARTITION]@OFFSET per record.
    let printed = std::fs::read_to_string(&out).unwrap();
    assert_eq!(printed.lines().count(), N);
    assert!(printed
        .lines()
        .all(|l| l.starts_with("progress[") && l.contains("]@") && !l.contains('\x1b')));
    assert_eq!(
        read_all(
            &tansu.bootstrap(),
            "progress",
            2,
            N,
            std::time::Duration::from_secs(60)
        )
        .len(),
        N
    );

    // Standard error a pipe (a script): nothing on it.
    let piped = Command::new(herald)
        .args(["produce", "-b", &tansu.bootstrap(), "-t", "quiet"])
        .stdin(std::fs::File::open(&input).unwrap())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert!(piped.status.success());
    assert_eq!(String::from_utf8_lossy(&piped.stderr), "");
    assert_eq!(String::from_utf8_lossy(&piped.stdout).lines().count(), N);
}
