//! Running `systemctl` and `journalctl` safely: an argument vector (never a shell string), no
//! stdin, a hard timeout after which the child is killed, a cap on the output kept; and the
//! parser of `systemctl show` output.

use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;

/// Most bytes of a command's stdout kept.
const MAX_OUTPUT_BYTES: usize = 1 << 20;
/// Most characters of stderr quoted in an error.
const MAX_STDERR_CHARS: usize = 300;

/// Why a command gave no usable output.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    #[error("{program} could not be started: {message}")]
    Spawn { program: String, message: String },
    #[error("{program} did not finish within {timeout:?}")]
    Timeout { program: String, timeout: Duration },
    #[error("{program} exited with {status}: {stderr}")]
    Failed {
        program: String,
        status: String,
        stderr: String,
    },
}

/// Run `program args...` and return its stdout (lossy UTF-8, at most 1 MiB).
pub async fn run(program: &str, args: &[&str], timeout: Duration) -> Result<String, CommandError> {
    let child = Command::new(program)
        .args(args)
        .env("LC_ALL", "C")
        .env("SYSTEMD_COLORS", "0")
        .env("SYSTEMD_PAGER", "")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| CommandError::Spawn {
            program: program.to_string(),
            message: e.to_string(),
        })?;
    // On timeout the future (and the child handle) is dropped, which kills the child.
    let out = match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Ok(r) => r.map_err(|e| CommandError::Spawn {
            program: program.to_string(),
            message: e.to_string(),
        })?,
        Err(_) => {
            return Err(CommandError::Timeout {
                program: program.to_string(),
                timeout,
            })
        }
    };
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let mut stderr: String = stderr
            .trim()
            .chars()
            .filter(|c| !c.is_control() || *c == ' ')
            .take(MAX_STDERR_CHARS)
            .collect();
        if stderr.is_empty() {
            stderr = "(no stderr)".into();
        }
        return Err(CommandError::Failed {
            program: program.to_string(),
            status: out.status.to_string(),
            stderr,
        });
    }
    let stdout = &out.stdout[..out.stdout.len().min(MAX_OUTPUT_BYTES)];
    Ok(String::from_utf8_lossy(stdout).into_owned())
}

/// What `systemctl show UNIT --property=LoadState,MainPID,ActiveState,SubState` says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SystemdStatus {
    pub load_state: Option<String>,
    /// `MainPID`; `None` when 0 (no main process).
    pub main_pid: Option<u32>,
    pub active_state: Option<String>,
    pub sub_state: Option<String>,
}

/// Parse `Key=value` lines of `systemctl show`.
pub fn parse_systemctl_show(text: &str) -> SystemdStatus {
    let mut s = SystemdStatus::default();
    for line in text.lines() {
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        let v = v.trim();
        match k.trim() {
            "LoadState" => s.load_state = Some(v.to_string()),
            "MainPID" => s.main_pid = v.parse::<u32>().ok().filter(|p| *p > 0),
            "ActiveState" => s.active_state = Some(v.to_string()),
            "SubState" => s.sub_state = Some(v.to_string()),
            _ => {}
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn systemctl_show() {
        let s = parse_systemctl_show(
            "MainPID=4242\nActiveState=active\nSubState=running\nLoadState=loaded\n",
        );
        assert_eq!(s.main_pid, Some(4242));
        assert_eq!(s.active_state.as_deref(), Some("active"));
        assert_eq!(s.sub_state.as_deref(), Some("running"));
        assert_eq!(s.load_state.as_deref(), Some("loaded"));
        let s = parse_systemctl_show("MainPID=0\nActiveState=failed\nSubState=failed\n");
        assert_eq!(s.main_pid, None);
        assert_eq!(s.active_state.as_deref(), Some("failed"));
    }

    #[tokio::test]
    async fn runs_and_fails_typed() {
        assert_eq!(
            run("echo", &["a; rm -rf /", "$(id)"], Duration::from_secs(5))
                .await
                .unwrap(),
            "a; rm -rf / $(id)\n"
        );
        assert!(matches!(
            run("/nonexistent/neo-ir-x", &[], Duration::from_secs(5)).await,
            Err(CommandError::Spawn { .. })
        ));
        assert!(matches!(
            run("false", &[], Duration::from_secs(5)).await,
            Err(CommandError::Failed { .. })
        ));
        assert!(matches!(
            run("sleep", &["5"], Duration::from_millis(100)).await,
            Err(CommandError::Timeout { .. })
        ));
    }
}
