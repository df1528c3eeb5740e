//! A real headless Chromium driven over WebDriver (chromedriver +
//! fantoccini), for tests of the web dashboard.
//!
//! Each [`Browser`] runs its own chromedriver on a free loopback port, in a
//! process group of its own, with a fresh profile and its logs in the
//! directory the test gives it; dropping it ends the session and kills the
//! group. Chromium must never send a packet beyond loopback: every host name
//! but 127.0.0.1 resolves to nothing, and background networking, component
//! updates, sync and proxies are off. Nothing here panics: failures are
//! errors naming the selector, what was last seen, a screenshot and the logs.

use anyhow::{anyhow, bail, Context, Result};
use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::json;
use std::fs::File;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The Chromium binary itself. Debian's `/usr/bin/chromium` is a shell
/// wrapper that adds `--enable-remote-extensions` and Google API keys; the
/// tests start the browser without it.
pub const CHROMIUM: &str = "/usr/lib/chromium/chromium";

/// Debian's chromedriver (package `chromium-driver`).
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// How often the `wait_*` methods look again.
const POLL: Duration = Duration::from_millis(100);

/// The size of the page area (`innerWidth` x `innerHeight`), in CSS pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Viewport {
    /// Width in CSS pixels.
    pub width: u32,
    /// Height in CSS pixels.
    pub height: u32,
    /// Emulate a phone: touch, a mobile viewport and a device pixel ratio of 2.
    pub mobile: bool,
}

impl Viewport {
    /// A desktop browser, 1280x900.
    pub const DESKTOP: Viewport = Viewport {
        width: 1280,
        height: 900,
        mobile: false,
    };
    /// A phone, 390x844 CSS pixels (an iPhone 12-15) with touch.
    pub const PHONE: Viewport = Viewport {
        width: 390,
        height: 844,
        mobile: true,
    };
}

/// A headless Chromium session; derefs to the fantoccini [`Client`] (whose
/// `screenshot()` is shadowed by [`Browser::screenshot`]).
pub struct Browser {
    client: Client,
    session: String,
    dir: PathBuf,
    // Dropped last: kills chromedriver's process group.
    driver: Driver,
}

impl Browser {
    /// Starts chromedriver and a desktop-sized Chromium (1280x900); profile,
    /// logs and screenshots go under `dir` (one browser per directory).
    pub async fn start(dir: &Path) -> Result<Browser> {
        Browser::start_with(dir, Viewport::DESKTOP).await
    }

    /// Starts chromedriver and Chromium with the given viewport (e.g.
    /// [`Viewport::PHONE`]); profile, logs and screenshots go under `dir`.
    pub async fn start_with(dir: &Path, viewport: Viewport) -> Result<Browser> {
        for (path, what) in [(CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")] {
            if !Path::new(path).exists() {
                bail!(
                    "{path} is missing: run tests/run.sh, which installs Debian's {what} \
                     (or apt-get install chromium chromium-driver)"
                );
            }
        }
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
        let profile = dir.join("chromium-profile");
        if profile.exists() {
            bail!(
                "{} already exists: give every Browser a directory of its own",
                profile.display()
            );
        }
        let driver = Driver::spawn(dir)?;
        driver.wait_ready(Duration::from_secs(30)).await?;

        let caps = capabilities(&profile, viewport);
        let url = format!("http://127.0.0.1:{}", driver.port);
        let mut builder = ClientBuilder::new(HttpConnector::new());
        builder.capabilities(caps);
        let client = tokio::time::timeout(Duration::from_secs(60), builder.connect(&url))
            .await
            .map_err(|_| anyhow!("no Chromium session after 60s; {}", driver.logs()))?
            .map_err(|e| anyhow!("open a Chromium session: {e}; {}", driver.logs()))?;
        let session = client
            .session_id()
            .await
            .context("read the WebDriver session id")?
            .ok_or_else(|| anyhow!("chromedriver gave no session id"))?;
        Ok(Browser {
            client,
            session,
            dir: dir.to_path_buf(),
            driver,
        })
    }

    /// The WebDriver client, for everything this harness does not wrap.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The directory holding the profile, logs and screenshots.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Opens `url` (an error names it and the logs).
    pub async fn open(&self, url: &str) -> Result<()> {
        self.client
            .goto(url)
            .await
            .map_err(|e| anyhow!("open {url}: {e}; {}", self.driver.logs()))
    }

    /// Saves the page as `<dir>/<name>.png`, prints `screenshot: PATH` and
    /// returns the path.
    pub async fn screenshot(&self, name: &str) -> Result<PathBuf> {
        let png = self
            .client
            .screenshot()
            .await
            .map_err(|e| anyhow!("take screenshot {name}: {e}"))?;
        let path = self.dir.join(format!("{name}.png"));
        std::fs::write(&path, png).with_context(|| format!("write {}", path.display()))?;
        eprintln!("screenshot: {}", path.display());
        Ok(path)
    }

    /// Waits (polling every 100 ms) until an element matches `css` and
    /// returns the first; on timeout the error names the selector, the page,
    /// the last error and a `timeout-…png` screenshot.
    pub async fn wait_for(&self, css: &str, timeout: Duration) -> Result<Element> {
        let deadline = Instant::now() + timeout;
        loop {
            let last = match self.client.find(Locator::Css(css)).await {
                Ok(el) => return Ok(el),
                Err(e) => e.to_string(),
            };
            if Instant::now() >= deadline {
                return Err(self
                    .timed_out(
                        css,
                        &format!("no element matches; last error: {last}"),
                        timeout,
                    )
                    .await);
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits (polling every 100 ms) until an element matching `css` has a
    /// text containing `needle` and returns it; on timeout the error names
    /// the selector, the texts last seen and a `timeout-…png` screenshot.
    pub async fn wait_until_text(
        &self,
        css: &str,
        needle: &str,
        timeout: Duration,
    ) -> Result<Element> {
        let deadline = Instant::now() + timeout;
        loop {
            let last = match self.client.find_all(Locator::Css(css)).await {
                Ok(els) if els.is_empty() => "no element matches".to_string(),
                Ok(els) => {
                    let mut texts = Vec::new();
                    for el in els {
                        match el.text().await {
                            Ok(t) if t.contains(needle) => return Ok(el),
                            Ok(t) => texts.push(format!("{:?}", clip(&t, 200))),
                            Err(e) => texts.push(format!("<{e}>")),
                        }
                    }
                    format!("texts seen: [{}]", texts.join(", "))
                }
                Err(e) => format!("last error: {e}"),
            };
            if Instant::now() >= deadline {
                let what = format!("no text containing {needle:?}; {last}");
                return Err(self.timed_out(css, &what, timeout).await);
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// The error of a `wait_*` that timed out, with a screenshot taken now.
    async fn timed_out(&self, css: &str, what: &str, timeout: Duration) -> anyhow::Error {
        let url = match self.client.current_url().await {
            Ok(u) => u.to_string(),
            Err(e) => format!("<unknown: {e}>"),
        };
        let shot = match self.screenshot(&format!("timeout-{}", slug(css))).await {
            Ok(p) => p.display().to_string(),
            Err(e) => format!("<failed: {e:#}>"),
        };
        anyhow!(
            "`{css}` on {url} after {timeout:?}: {what}; screenshot: {shot}; {}",
            self.driver.logs()
        )
    }
}

impl std::ops::Deref for Browser {
    type Target = Client;

    fn deref(&self) -> &Client {
        &self.client
    }
}

impl Drop for Browser {
    /// Ends the session (chromedriver then stops Chromium and reaps it);
    /// the driver's own drop kills whatever is left of its process group.
    fn drop(&mut self) {
        let path = format!("/session/{}", self.session);
        let _ = http(self.driver.port, "DELETE", &path, Duration::from_secs(10));
    }
}

/// The new-session capabilities: our Chromium, headless, nothing beyond loopback.
fn capabilities(profile: &Path, viewport: Viewport) -> fantoccini::wd::Capabilities {
    let args = vec![
        "--headless=new".to_string(),
        "--no-sandbox".into(),
        "--disable-gpu".into(),
        "--disable-quic".into(),
        "--no-first-run".into(),
        "--disable-background-networking".into(),
        "--disable-component-update".into(),
        "--disable-sync".into(),
        "--disable-default-apps".into(),
        "--no-default-browser-check".into(),
        "--disable-extensions".into(),
        "--no-proxy-server".into(),
        "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1".into(),
        format!("--user-data-dir={}", profile.display()),
        format!("--window-size={},{}", viewport.width, viewport.height),
    ];
    // The window size leaves room for a browser frame even when headless;
    // device metrics make the page area exactly the viewport.
    let chrome = json!({
        "binary": CHROMIUM,
        "args": args,
        "mobileEmulation": {
            "deviceMetrics": {
                "width": viewport.width,
                "height": viewport.height,
                "pixelRatio": if viewport.mobile { 2.0 } else { 1.0 },
                "mobile": viewport.mobile,
                "touch": viewport.mobile,
            }
        },
    });
    let mut caps = fantoccini::wd::Capabilities::new();
    caps.insert("browserName".into(), json!("chrome"));
    caps.insert("goog:chromeOptions".into(), chrome);
    caps
}

/// chromedriver in a process group of its own; dropping it kills the group.
struct Driver {
    child: Child,
    port: u16,
    log: PathBuf,
    chromium_log: PathBuf,
}

impl Driver {
    /// Spawns chromedriver on a free loopback port (it only listens on
    /// loopback without `--allowed-ips`, which would open it to all
    /// interfaces). Its own log goes to `chromedriver.log`; its output and
    /// Chromium's stderr log to `chromium.log`.
    fn spawn(dir: &Path) -> Result<Driver> {
        let port = super::free_port();
        let log = dir.join("chromedriver.log");
        let chromium_log = dir.join("chromium.log");
        let out = File::create(&chromium_log)
            .with_context(|| format!("create {}", chromium_log.display()))?;
        let err = out
            .try_clone()
            .with_context(|| format!("reopen {}", chromium_log.display()))?;
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log.display()))
            // Chromium keeps its crash database under the default profile's
            // parent, not --user-data-dir: keep it in `dir` too.
            .env("XDG_CONFIG_HOME", dir.join("xdg-config"))
            .env("XDG_CACHE_HOME", dir.join("xdg-cache"))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0)
            .spawn()
            .with_context(|| format!("start {CHROMEDRIVER}"))?;
        Ok(Driver {
            child,
            port,
            log,
            chromium_log,
        })
    }

    /// Waits (bounded) until chromedriver's `/status` says it is ready.
    async fn wait_ready(&self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let last = match http(self.port, "GET", "/status", Duration::from_secs(2)) {
                Ok(body) if body.contains("\"ready\":true") => return Ok(()),
                Ok(body) => clip(&body, 300).to_string(),
                Err(e) => e.to_string(),
            };
            if Instant::now() >= deadline {
                bail!(
                    "chromedriver on port {} not ready after {timeout:?} (last: {last}); {}",
                    self.port,
                    self.logs()
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Where to look when something went wrong.
    fn logs(&self) -> String {
        format!(
            "logs: {} {}",
            self.log.display(),
            self.chromium_log.display()
        )
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let pgid = self.child.id() as libc::pid_t;
        // SAFETY: kill(2) on the process group we created for our own child.
        unsafe {
            libc::kill(-pgid, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        // SAFETY: as above; whatever ignored SIGTERM goes now.
        unsafe {
            libc::kill(-pgid, libc::SIGKILL);
        }
        let _ = self.child.wait();
    }
}

/// One HTTP/1.1 request to chromedriver on loopback; the response body.
/// Blocking and bounded by `timeout`, so `Drop` can use it too.
fn http(port: u16, method: &str, path: &str, timeout: Duration) -> std::io::Result<String> {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut sock = TcpStream::connect_timeout(&addr, timeout)?;
    sock.set_read_timeout(Some(timeout))?;
    sock.set_write_timeout(Some(timeout))?;
    write!(
        sock,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )?;
    // chromedriver answers `Connection: close` but keeps the socket open:
    // read the head, then Content-Length bytes of body.
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&buf);
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let len = head
                .lines()
                .filter_map(|l| l.split_once(':'))
                .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
                .and_then(|(_, v)| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if body.len() >= len {
                return Ok(body.to_string());
            }
        }
        match sock.read(&mut chunk)? {
            0 => return Ok(String::new()),
            n => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// At most `n` characters of `s`.
fn clip(s: &str, n: usize) -> &str {
    s.char_indices().nth(n).map_or(s, |(i, _)| &s[..i])
}

/// A selector as a file-name part: letters and digits, the rest `-`, at most 60.
fn slug(css: &str) -> String {
    let s: String = css
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(60)
        .collect();
    s.trim_matches('-').to_string()
}
