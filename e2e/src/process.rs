//! One real Shoal binary running as a child process: found next to the test
//! executable, its output kept in a log file that a failing test prints,
//! killed when dropped so a panicking test leaves no process behind.

use std::fs::File;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

/// Where cargo put the workspace's binaries: the test executable lives in
/// `<target>/<profile>/deps/`, the binaries in `<target>/<profile>/`.
pub fn binary(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("locating the test executable")?;
    let own_dir = exe.parent().context("the executable has no directory")?;
    // A binary (the benchmarks) sits beside the others in <profile>/; a
    // test executable sits in <profile>/deps/.
    let profile_dir = if own_dir.join(name).is_file() {
        own_dir
    } else {
        own_dir
            .parent()
            .context("the test executable is not in <target>/<profile>/deps")?
    };
    let path = profile_dir.join(name);
    if !path.is_file() {
        bail!(
            "{} is missing: build the binaries first (`cargo build --bins`, which \
             `cargo test --workspace` does)",
            path.display()
        );
    }
    Ok(path)
}

/// A running component.
pub struct Process {
    name: String,
    child: Child,
    log: PathBuf,
}

impl Process {
    /// Starts `binary` with `args`, stdout and stderr into `<log_dir>/<name>.log`.
    pub fn spawn(
        name: &str,
        binary: &str,
        args: &[String],
        log_dir: &Path,
    ) -> anyhow::Result<Self> {
        Self::spawn_with_env(name, binary, args, log_dir, &[])
    }

    /// [`Process::spawn`] with extra environment variables, which override
    /// the inherited ones (`RUST_LOG=trace` for one process, say).
    pub fn spawn_with_env(
        name: &str,
        binary: &str,
        args: &[String],
        log_dir: &Path,
        env: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        let path = self::binary(binary)?;
        let log = log_dir.join(format!("{name}.log"));
        let out = File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let err = out.try_clone().context("duplicating the log file")?;
        let child = Command::new(&path)
            .args(args)
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .with_context(|| format!("starting {}", path.display()))?;
        Ok(Process {
            name: name.to_owned(),
            child,
            log,
        })
    }

    /// Waits until `addr` accepts TCP connections; fails early, with the
    /// log, if the process exits first.
    pub fn wait_listening(&mut self, addr: SocketAddr, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().context("polling the child")? {
                bail!(
                    "{} exited ({status}) before listening on {addr}:\n{}",
                    self.name,
                    self.log_text()
                );
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "{} did not listen on {addr} within {timeout:?}:\n{}",
                    self.name,
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// What the process has printed so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_else(|e| format!("(no log: {e})"))
    }

    /// The component's name in the cluster.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Kills the process at once (`kill -9`), as a crash would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A loopback address that was free a moment ago (components must know each
/// other's addresses before they start).
pub fn free_addr() -> anyhow::Result<SocketAddr> {
    for _ in 0..64 {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
        let addr = listener.local_addr().context("finding a free port")?;
        let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
        if handed_out.insert(addr.port()) {
            return Ok(addr);
        }
    }
    bail!("no port the kernel offered was unused by this harness (64 tries)")
}

/// Ports [`free_addr`] has handed out in this process. The kernel may offer
/// a port again as soon as the probing socket closes, and two components
/// told the same port fail to start (an agent's registry API and its peer
/// listener once got the same one).
static HANDED_OUT: std::sync::Mutex<std::collections::BTreeSet<u16>> =
    std::sync::Mutex::new(std::collections::BTreeSet::new());
