//! Health: the server refuses to start on a database it cannot write, and
//! `/healthz` covers the writer, not only reads.

mod common;

use common::{bin, Server, TempDir};
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn running_as_root() -> bool {
    let out = Command::new("id").arg("-u").output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim() == "0"
}

#[test]
fn a_read_only_database_is_refused_at_start() {
    // A database that has served once (its operator account exists, so the
    // start itself writes nothing), then made read-only.
    let dir = TempDir::new();
    let db = dir.0.join("test.db");
    let s = Server::start_on(TempDir::new(), db.clone(), &[], &[]);
    s.stop();
    std::fs::set_permissions(&dir.0, std::fs::Permissions::from_mode(0o777)).unwrap();
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o444)).unwrap();
    // Root writes read-only files anyway: run the server as nobody.
    let mut cmd = if running_as_root() {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", bin()]);
        c
    } else {
        Command::new(bin())
    };
    let mut child = cmd
        .arg("--db")
        .arg(&db)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let until = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > until {
            let _ = child.kill();
            let _ = child.wait();
            // Before: it served, /healthz said 200 and every change was a 500.
            panic!("the server started on a read-only database");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("cannot write to the database") && stderr.contains("read-only"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty(), "no banner");
}

#[test]
fn healthz_covers_the_writer() {
    let s = Server::start_with(&["--rate-limit-ip", "0"], &[]);
    assert_eq!(s.get("/healthz", &[]).status, 200);
    // Another connection holds the write lock: reads still work, but the
    // writer cannot commit anything.
    let holder = s.sql();
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();
    let started = Instant::now();
    let r = s.get("/healthz", &[]);
    // Before: 200.
    assert_eq!(r.status, 503, "{}", r.text);
    assert_eq!(r.body["status"], "unavailable");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(s.log().contains("health check failed"), "{}", s.log());
    holder.execute_batch("ROLLBACK").unwrap();
    // The writer gets the lock and answers again.
    let until = Instant::now() + Duration::from_secs(15);
    loop {
        let r = s.get("/healthz", &[]);
        if r.status == 200 {
            assert_eq!(r.body["status"], "ok");
            break;
        }
        assert!(Instant::now() < until, "still {}: {}", r.status, r.text);
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn healthz_is_fast() {
    let s = Server::start_with(&["--rate-limit-ip", "0"], &[]);
    let started = Instant::now();
    for _ in 0..200 {
        assert_eq!(s.get("/healthz", &[]).status, 200);
    }
    // A round trip through the writer without writing: no fsync each.
    let per = started.elapsed() / 200;
    assert!(per < Duration::from_millis(20), "{per:?} per /healthz");
}
