//! Every external tool the pipeline runs (ffprobe, ffmpeg) runs through [`Process`]:
//! spawned with its stdin fed from memory or closed, stdout collected or streamed line
//! by line, stderr collected, an optional deadline after which the child is killed,
//! kill on drop (a cancelled import never leaves a child behind), and one typed
//! [`ProcessError`]. A finished run is an [`Exit`], whose stderr is condensed into a
//! one-line reason for reports.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{ChildStdin, Command};
use tokio::time::Instant;

#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("cannot run {tool}: {source}")]
    Spawn {
        tool: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("{tool} did not finish before its deadline")]
    TimedOut { tool: &'static str },
    #[error("unexpected {tool} output: {detail}")]
    Output { tool: &'static str, detail: String },
    /// A non-zero exit (or, for [`Exit::clean`], any error output): `reason` is the
    /// condensed stderr, else `{tool} {status}`.
    #[error("{reason}")]
    Failed { tool: &'static str, reason: String },
}

/// One run of an external tool, built then started by [`Process::output`] or
/// [`Process::stream_lines`].
#[derive(Debug)]
pub struct Process {
    tool: &'static str,
    command: Command,
    stdin: Option<Vec<u8>>,
    deadline: Option<Instant>,
    input: Option<PathBuf>,
}

/// A tool that ran to its end (whatever its status).
#[derive(Debug)]
pub struct Exit {
    pub tool: &'static str,
    pub status: ExitStatus,
    /// Everything it wrote on stdout; empty when stdout was streamed.
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    input: Option<PathBuf>,
}

/// What happens to the child's stdout.
enum Stdout<'a> {
    Collect,
    Lines(&'a mut (dyn FnMut(&str) -> Result<(), String> + Send)),
}

impl Process {
    /// `program` (an absolute path, see `Tools`) reported as `tool`.
    pub fn new(tool: &'static str, program: &Path) -> Process {
        Process {
            tool,
            command: Command::new(program),
            stdin: None,
            deadline: None,
            input: None,
        }
    }

    pub fn args<I, S>(mut self, args: I) -> Process
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.command.args(args.into_iter().map(Into::into));
        self
    }

    /// Bytes written to the child's stdin (closed after them); without this, stdin is
    /// `/dev/null`.
    pub fn stdin(mut self, bytes: Vec<u8>) -> Process {
        self.stdin = Some(bytes);
        self
    }

    /// Kill the child if it has not finished by `at` ([`ProcessError::TimedOut`]).
    pub fn deadline(mut self, at: Instant) -> Process {
        self.deadline = Some(at);
        self
    }

    /// The file the tool reads: shown as `input` in [`Exit::stderr_summary`].
    pub fn input(mut self, path: &Path) -> Process {
        self.input = Some(path.to_path_buf());
        self
    }

    /// Run to the end, collecting stdout.
    pub async fn output(self) -> Result<Exit, ProcessError> {
        self.run(Stdout::Collect).await
    }

    /// Run to the end, handing every stdout line (without its line ending, invalid
    /// UTF-8 replaced) to `on_line`. An `Err(detail)` from it stops the reading and
    /// becomes [`ProcessError::Output`] once the child has exited.
    pub async fn stream_lines(
        self,
        mut on_line: impl FnMut(&str) -> Result<(), String> + Send,
    ) -> Result<Exit, ProcessError> {
        self.run(Stdout::Lines(&mut on_line)).await
    }

    async fn run(self, mode: Stdout<'_>) -> Result<Exit, ProcessError> {
        let Process {
            tool,
            mut command,
            stdin,
            deadline,
            input,
        } = self;
        let mut child = command
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| ProcessError::Spawn { tool, source })?;
        let (Some(stdout), Some(mut stderr)) = (child.stdout.take(), child.stderr.take()) else {
            return Err(ProcessError::Output {
                tool,
                detail: "no pipes".into(),
            });
        };
        let pipe = child.stdin.take();
        let mut err = Vec::new();
        let work = async {
            let (out, fed, read) = tokio::join!(
                read_stdout(stdout, mode),
                feed(pipe, stdin),
                stderr.read_to_end(&mut err)
            );
            (out, fed, read, child.wait().await)
        };
        let (out, fed, read, status) = match deadline {
            Some(at) => tokio::time::timeout_at(at, work)
                .await
                .map_err(|_| ProcessError::TimedOut { tool })?,
            None => work.await,
        };
        let status = status.map_err(|source| ProcessError::Spawn { tool, source })?;
        let output = |detail: String| ProcessError::Output { tool, detail };
        let stdout = out.map_err(output)?;
        fed.map_err(|e| output(format!("writing its input: {e}")))?;
        read.map_err(|e| output(e.to_string()))?;
        Ok(Exit {
            tool,
            status,
            stdout,
            stderr: err,
            input,
        })
    }
}

/// Write `bytes` to the child's stdin and close it. A child that exits without reading
/// everything is not an error here: its status says what happened.
async fn feed(pipe: Option<ChildStdin>, bytes: Option<Vec<u8>>) -> std::io::Result<()> {
    let (Some(mut pipe), Some(bytes)) = (pipe, bytes) else {
        return Ok(());
    };
    match pipe.write_all(&bytes).await {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e),
        _ => Ok(()),
    }
}

async fn read_stdout(stdout: impl AsyncRead + Unpin, mode: Stdout<'_>) -> Result<Vec<u8>, String> {
    let mut reader = BufReader::new(stdout);
    let mut buf = Vec::new();
    match mode {
        Stdout::Collect => {
            reader
                .read_to_end(&mut buf)
                .await
                .map_err(|e| e.to_string())?;
            Ok(buf)
        }
        Stdout::Lines(on_line) => loop {
            buf.clear();
            let n = reader
                .read_until(b'\n', &mut buf)
                .await
                .map_err(|e| e.to_string())?;
            if n == 0 {
                return Ok(Vec::new());
            }
            let line = String::from_utf8_lossy(&buf);
            on_line(line.trim_end_matches('\n').trim_end_matches('\r'))?;
        },
    }
}

impl Exit {
    /// Its stderr condensed for a one-line report (see [`stderr_summary`]).
    pub fn stderr_summary(&self) -> String {
        summarise(&self.stderr, self.input.as_deref())
    }

    /// Why it failed: the stderr summary, else `{tool} {status}`.
    pub fn reason(&self) -> String {
        let why = self.stderr_summary();
        if why.is_empty() {
            format!("{} {}", self.tool, self.status)
        } else {
            why
        }
    }

    /// `Ok` when it exited with status 0, else [`ProcessError::Failed`].
    pub fn success(self) -> Result<Exit, ProcessError> {
        if self.status.success() {
            Ok(self)
        } else {
            Err(self.failed())
        }
    }

    /// `Ok` when it exited with status 0 and said nothing on stderr (a check run at
    /// `-v error`, where any line is an error), else [`ProcessError::Failed`].
    pub fn clean(self) -> Result<Exit, ProcessError> {
        if self.status.success() && self.stderr_summary().is_empty() {
            Ok(self)
        } else {
            Err(self.failed())
        }
    }

    fn failed(&self) -> ProcessError {
        ProcessError::Failed {
            tool: self.tool,
            reason: self.reason(),
        }
    }
}

/// A tool's stderr condensed for a one-line report: its last three lines, with the
/// temporary path shown as `input` and `[mp3 @ 0x55…] ` context prefixes as `mp3: `.
pub fn stderr_summary(stderr: &[u8], input: &Path) -> String {
    summarise(stderr, Some(input))
}

fn summarise(stderr: &[u8], input: Option<&Path>) -> String {
    let text = String::from_utf8_lossy(stderr);
    let input = input.map(|p| p.display().to_string());
    let lines: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| {
            let l = match &input {
                Some(input) => l
                    .replace(&format!("file:{input}"), "input")
                    .replace(input, "input"),
                None => l.to_string(),
            };
            match l.strip_prefix('[').and_then(|r| r.split_once("] ")) {
                Some((context, rest)) => {
                    let name = context.split(" @ ").next().unwrap_or(context);
                    format!("{name}: {rest}")
                }
                None => l,
            }
        })
        .collect();
    lines[lines.len().saturating_sub(3)..].join("; ")
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn sh(script: &str) -> Process {
        Process::new("sh", Path::new("/bin/sh")).args(["-c", script])
    }

    #[test]
    fn tool_errors_are_condensed() {
        let input = Path::new("/tmp/veza-import-1/original.mp3");
        let stderr =
            b"[mp3 @ 0x556dd2663780] first\n\n[mp3 @ 0x556dd2663780] Failed to read frame size\n\
[flac @ 0x5] invalid residual\nfile:/tmp/veza-import-1/original.mp3: Invalid argument\n";
        assert_eq!(
            stderr_summary(stderr, input),
            "mp3: Failed to read frame size; flac: invalid residual; input: Invalid argument"
        );
        assert_eq!(stderr_summary(b"", input), "");
    }

    #[tokio::test]
    async fn stdin_goes_in_and_stdout_comes_out() {
        let exit = Process::new("cat", Path::new("/bin/cat"))
            .stdin(b"a\nb\r\nc".to_vec())
            .output()
            .await
            .unwrap()
            .success()
            .unwrap();
        assert_eq!(exit.stdout, b"a\nb\r\nc");
        let mut lines = Vec::new();
        let exit = Process::new("cat", Path::new("/bin/cat"))
            .stdin(b"a\nb\r\nc".to_vec())
            .stream_lines(|l| {
                lines.push(l.to_string());
                Ok(())
            })
            .await
            .unwrap();
        assert!(exit.status.success() && exit.stdout.is_empty());
        assert_eq!(lines, ["a", "b", "c"]);
    }

    #[tokio::test]
    async fn failures_are_typed() {
        let missing = Process::new("nothing", Path::new("/nonexistent/tool"))
            .output()
            .await;
        assert!(
            matches!(
                missing,
                Err(ProcessError::Spawn {
                    tool: "nothing",
                    ..
                })
            ),
            "{missing:?}"
        );

        let input = Path::new("/tmp/x/in.wav");
        let exit = sh("echo '[wav @ 0x1] bad header in /tmp/x/in.wav' >&2; exit 3")
            .input(input)
            .output()
            .await
            .unwrap();
        assert_eq!(exit.stderr_summary(), "wav: bad header in input");
        let err = exit.success().unwrap_err();
        assert_eq!(err.to_string(), "wav: bad header in input");

        let quiet = sh("exit 4").output().await.unwrap().success().unwrap_err();
        assert_eq!(quiet.to_string(), "sh exit status: 4");

        let noisy = sh("echo warning >&2").output().await.unwrap();
        assert!(noisy.status.success());
        assert_eq!(noisy.clean().unwrap_err().to_string(), "warning");

        let bad_line = sh("echo 1; echo x; echo 3")
            .stream_lines(|l| l.parse::<u32>().map(drop).map_err(|_| format!("{l:?}")))
            .await
            .unwrap_err();
        assert_eq!(bad_line.to_string(), "unexpected sh output: \"x\"");
    }

    #[tokio::test]
    async fn a_deadline_kills_the_child() {
        let started = std::time::Instant::now();
        let r = sh("sleep 30")
            .deadline(Instant::now() + Duration::from_millis(200))
            .output()
            .await;
        assert!(
            matches!(r, Err(ProcessError::TimedOut { tool: "sh" })),
            "{r:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(10));
    }
}
