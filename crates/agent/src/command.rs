//! Running `systemctl` and `journalctl` for the report: through the operations' runner
//! (an argument vector, never a shell string; no stdin; a hard timeout after which the child
//! is killed; a cap on the output kept), success meaning exit 0; and the parser of
//! `systemctl show` output.

use std::time::Duration;

use crate::ops::exec::{run_argv, RunError};

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

/// Run `program args...` and return its stdout (lossy UTF-8, at most 1 MiB); a non-zero
/// exit is an error quoting stderr.
pub async fn run(program: &str, args: &[&str], timeout: Duration) -> Result<String, CommandError> {
    let mut argv = vec![program.to_string()];
    argv.extend(args.iter().map(|a| a.to_string()));
    let out = run_argv(&argv, timeout).await.map_err(|e| match e {
        RunError::Spawn { program, message } => CommandError::Spawn { program, message },
        RunError::Timeout { program, timeout } => CommandError::Timeout { program, timeout },
    })?;
    if out.exit_code != Some(0) {
        let mut stderr: String = out
            .stderr
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
            status: match out.exit_code {
                Some(c) => format!("exit status: {c}"),
                None => "a signal".to_string(),
            },
            stderr,
        });
    }
    let mut stdout = out.stdout;
    if stdout.len() > MAX_OUTPUT_BYTES {
        let mut cut = MAX_OUTPUT_BYTES;
        while !stdout.is_char_boundary(cut) {
            cut -= 1;
        }
        stdout.truncate(cut);
    }
    Ok(stdout)
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
