//! nginx on loopback for the tests (green for the probe tests, the reference for the differential
//! test): a config around an `http` block, run in the foreground, stopped when dropped.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Nginx {
    child: Child,
    pub dir: PathBuf,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM, not SIGKILL: the master stops its workers; killed outright, it would leave
        // them running (holding their ports) after the test.
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Nginx {
    /// Runs nginx from `dir` with `http` inside its `http { }` block, and waits until `port`
    /// (one it listens on) accepts.
    pub fn start(dir: PathBuf, http: &str, port: u16) -> Nginx {
        let d = dir.display();
        let conf = format!(
            "worker_processes 1;\ndaemon off;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
             events {{ worker_connections 64; }}\n\
             http {{\n  client_body_temp_path {d}/body; proxy_temp_path {d}/proxy; fastcgi_temp_path {d}/fastcgi;\n  \
             uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;\n{http}\n}}\n"
        );
        std::fs::write(dir.join("nginx.conf"), conf).unwrap();
        let bin = ["/usr/sbin/nginx", "nginx"].into_iter().find(|n| Command::new(n).arg("-v").output().is_ok());
        let bin = bin.expect("nginx is needed (.ci/run installs it: apt-get install nginx)");
        let child = Command::new(bin)
            .args(["-p", &d.to_string(), "-c", &format!("{d}/nginx.conf")])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let nginx = Nginx { child, dir };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "nginx did not start: {}", nginx.errors());
            std::thread::sleep(Duration::from_millis(20));
        }
        nginx
    }

    /// Its error log so far.
    pub fn errors(&self) -> String {
        std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
    }
}
