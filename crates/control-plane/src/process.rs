//! A program of the cluster running in the background: its output in a log
//! file of the cluster's folder, stopped when the handle is dropped.

use anyhow::{Context, Result, bail};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Process {
    pub name: String,
    child: Child,
    pub log: PathBuf,
}

impl Process {
    /// Starts `command`, its stdout and stderr going to `dir/<name>.log`.
    pub fn spawn(name: &str, mut command: Command, dir: &Path) -> Result<Process> {
        die_with_parent(&mut command);
        let log = dir.join(format!("{name}.log"));
        let out = fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let child = command
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            // Host errors would carry backtraces into the policy's warnings.
            .env_remove("RUST_BACKTRACE")
            .spawn()
            .with_context(|| format!("starting {name} ({:?})", command.get_program()))?;
        Ok(Process {
            name: name.into(),
            child,
            log,
        })
    }

    /// Fails, quoting the log's last lines, if the program has exited.
    pub fn check_running(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!(
                "{} exited ({status}); the last lines of {}:\n{}",
                self.name,
                self.log.display(),
                self.last_lines(30)
            );
        }
        Ok(())
    }

    pub fn last_lines(&self, n: usize) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// Waits (bounded) until `ready` holds, failing early if the program
    /// exits.
    pub fn wait_ready(
        &mut self,
        within: Duration,
        what: &str,
        mut ready: impl FnMut() -> bool,
    ) -> Result<()> {
        let started = Instant::now();
        loop {
            self.check_running()?;
            if ready() {
                return Ok(());
            }
            if started.elapsed() > within {
                bail!(
                    "{} was not {what} within {within:?}; the last lines of {}:\n{}",
                    self.name,
                    self.log.display(),
                    self.last_lines(30)
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A cluster left running by a test runner killed outright would hold its
/// ports and burn CPU until the machine restarts: each program is told by
/// the kernel to stop when the thread that started it ends.
fn die_with_parent(command: &mut Command) {
    use std::os::unix::process::CommandExt as _;
    // SAFETY: prctl is async-signal-safe and touches no memory of the
    // parent; it is the only call made between fork and exec.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Ports free at the moment, all held until every one is picked, so no two
/// are the same (the programs bind them themselves).
pub fn free_ports<const N: usize>() -> Result<[u16; N]> {
    let listeners = (0..N)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
        .collect::<std::io::Result<Vec<_>>>()?;
    let mut ports = [0; N];
    for (port, listener) in ports.iter_mut().zip(&listeners) {
        *port = listener.local_addr()?.port();
    }
    Ok(ports)
}
