//! Executing a plan's steps: `Exec` steps run their argument vector exactly as the plan shows
//! it (no shell, stdin null, own process group killed on timeout, output capped); `Builtin`
//! steps run the work the operation hands over, under the step's timeout. Every step run,
//! failed or skipped is recorded as a `StepResult`; steps never reached are `skipped`.

use std::future::Future;
use std::process::Stdio;
use std::time::{Duration, Instant};

use neo_ir_core::runbook::{Action, Plan, Step, StepResult, StepStatus, MAX_STEP_OUTPUT};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;

/// Most bytes kept of each of a command's stdout and stderr.
pub const MAX_COMMAND_OUTPUT: usize = 4 << 20;

/// A step failed (its result is recorded); the operation decides whether to go on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepFailed;

/// What a finished command printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    /// `None` when killed by a signal.
    pub exit_code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl ExecOutput {
    /// stdout, then stderr, for a step's output.
    pub fn combined(&self) -> String {
        match (self.stdout.trim_end(), self.stderr.trim_end()) {
            (o, "") => o.to_string(),
            ("", e) => e.to_string(),
            (o, e) => format!("{o}\n{e}"),
        }
    }
}

/// Why a command gave no exit status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RunError {
    #[error("{program} could not be started: {message}")]
    Spawn { program: String, message: String },
    #[error("{program} did not finish within {timeout:?} and was killed")]
    Timeout { program: String, timeout: Duration },
}

/// Run `argv` (program first) with a hard timeout: stdin null, `LC_ALL=C`, its own process
/// group (killed as a whole on timeout), stdout and stderr kept up to `MAX_COMMAND_OUTPUT`.
pub async fn run_argv(argv: &[String], timeout: Duration) -> Result<ExecOutput, RunError> {
    let Some((program, args)) = argv.split_first() else {
        return Err(RunError::Spawn {
            program: String::new(),
            message: "empty argument vector".into(),
        });
    };
    let mut child = Command::new(program)
        .args(args)
        .env("LC_ALL", "C")
        .env("SYSTEMD_COLORS", "0")
        .env("SYSTEMD_PAGER", "")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| RunError::Spawn {
            program: program.clone(),
            message: e.to_string(),
        })?;
    let pid = child.id();
    let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
        return Err(RunError::Spawn {
            program: program.clone(),
            message: "no pipes to the child".into(),
        });
    };
    let waited = tokio::time::timeout(timeout, async {
        tokio::join!(
            read_capped(stdout, MAX_COMMAND_OUTPUT),
            read_capped(stderr, MAX_COMMAND_OUTPUT),
            child.wait()
        )
    })
    .await;
    match waited {
        Ok((out, err, status)) => {
            let status = status.map_err(|e| RunError::Spawn {
                program: program.clone(),
                message: e.to_string(),
            })?;
            Ok(ExecOutput {
                exit_code: status.code(),
                stdout: String::from_utf8_lossy(&out).into_owned(),
                stderr: String::from_utf8_lossy(&err).into_owned(),
            })
        }
        Err(_) => {
            // the whole group: a program may have started helpers that hold the pipes
            if let Some(pgid) = pid.and_then(|p| rustix::process::Pid::from_raw(p as i32)) {
                let _ = rustix::process::kill_process_group(pgid, rustix::process::Signal::KILL);
            }
            let _ = child.kill().await;
            Err(RunError::Timeout {
                program: program.clone(),
                timeout,
            })
        }
    }
}

/// Read to the end, keeping at most `cap` bytes (the rest is drained so the writer never
/// blocks on a full pipe).
async fn read_capped(mut r: impl AsyncRead + Unpin, cap: usize) -> Vec<u8> {
    let mut kept = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        match r.read(&mut chunk).await {
            Ok(0) | Err(_) => return kept,
            Ok(n) => {
                let room = cap.saturating_sub(kept.len());
                kept.extend_from_slice(&chunk[..n.min(room)]);
            }
        }
    }
}

/// A step's output clipped to `MAX_STEP_OUTPUT` characters.
pub fn clip_output(s: &str) -> String {
    if s.chars().count() <= MAX_STEP_OUTPUT {
        return s.to_string();
    }
    let mut out: String = s.chars().take(MAX_STEP_OUTPUT).collect();
    out.push_str("\n…(output clipped)");
    out
}

/// The results of one plan's execution, step by step.
pub struct Execution {
    steps: Vec<Step>,
    results: Vec<Option<StepResult>>,
}

impl Execution {
    pub fn new(plan: &Plan) -> Self {
        Execution {
            steps: plan.steps.clone(),
            results: vec![None; plan.steps.len()],
        }
    }

    fn index(&self, name: &str) -> Option<usize> {
        let i = self.steps.iter().position(|s| s.name == name);
        if i.is_none() {
            tracing::error!(step = name, "operation ran a step its plan does not have");
        }
        i
    }

    fn record(
        &mut self,
        i: usize,
        status: StepStatus,
        exit_code: Option<i32>,
        output: &str,
        started: Instant,
    ) {
        self.results[i] = Some(StepResult {
            name: self.steps[i].name.clone(),
            status,
            exit_code,
            output: clip_output(output),
            duration_ms: started.elapsed().as_millis() as u64,
        });
    }

    /// Run the `Exec` step `name` exactly as planned. Fails when the exit code is not one
    /// of its `expect_exit`, when it cannot start, or on timeout.
    pub async fn exec(&mut self, name: &str) -> Result<ExecOutput, StepFailed> {
        let i = self.index(name).ok_or(StepFailed)?;
        let started = Instant::now();
        let step = self.steps[i].clone();
        let Action::Exec { argv } = &step.action else {
            self.record(
                i,
                StepStatus::Failed,
                None,
                "internal error: not an exec step",
                started,
            );
            return Err(StepFailed);
        };
        match run_argv(argv, step.timeout).await {
            Ok(out) => {
                let ok = out.exit_code.is_some_and(|c| step.expect_exit.contains(&c));
                let mut text = out.combined();
                if !ok {
                    let how = match out.exit_code {
                        Some(c) => format!("exit code {c}"),
                        None => "killed by a signal".to_string(),
                    };
                    text = format!("{text}\n({how}; expected {:?})", step.expect_exit);
                }
                let status = if ok {
                    StepStatus::Ok
                } else {
                    StepStatus::Failed
                };
                self.record(i, status, out.exit_code, text.trim_start(), started);
                if ok {
                    Ok(out)
                } else {
                    Err(StepFailed)
                }
            }
            Err(e @ RunError::Timeout { .. }) => {
                self.record(i, StepStatus::TimedOut, None, &e.to_string(), started);
                Err(StepFailed)
            }
            Err(e) => {
                self.record(i, StepStatus::Failed, None, &e.to_string(), started);
                Err(StepFailed)
            }
        }
    }

    /// Run the `Builtin` step `name`: `work` gives a value and the step's output, or an
    /// error message; it is dropped (and the step timed out) after the step's timeout.
    pub async fn builtin<T, F>(&mut self, name: &str, work: F) -> Result<T, StepFailed>
    where
        F: Future<Output = Result<(T, String), String>>,
    {
        let i = self.index(name).ok_or(StepFailed)?;
        let started = Instant::now();
        let timeout = self.steps[i].timeout;
        // boxed: operations nest steps, and their futures would otherwise all be built on
        // the (test or worker) thread's stack
        match tokio::time::timeout(timeout, Box::pin(work)).await {
            Ok(Ok((value, output))) => {
                self.record(i, StepStatus::Ok, None, &output, started);
                Ok(value)
            }
            Ok(Err(message)) => {
                self.record(i, StepStatus::Failed, None, &message, started);
                Err(StepFailed)
            }
            Err(_) => {
                let msg = format!("did not finish within {}s", timeout.as_secs());
                self.record(i, StepStatus::TimedOut, None, &msg, started);
                Err(StepFailed)
            }
        }
    }

    /// Record `name` as not run, with the reason.
    pub fn skip(&mut self, name: &str, why: &str) {
        if let Some(i) = self.index(name) {
            self.record(i, StepStatus::Skipped, None, why, Instant::now());
        }
    }

    /// Whether `name` has a result yet.
    pub fn has_result(&self, name: &str) -> bool {
        self.steps
            .iter()
            .position(|s| s.name == name)
            .is_some_and(|i| self.results[i].is_some())
    }

    /// The results in plan order; a step never reached is `skipped`.
    pub fn finish(self) -> Vec<StepResult> {
        let failed_at = self
            .results
            .iter()
            .flatten()
            .find(|r| matches!(r.status, StepStatus::Failed | StepStatus::TimedOut))
            .map(|r| r.name.clone());
        self.steps
            .iter()
            .zip(self.results)
            .map(|(step, r)| {
                r.unwrap_or_else(|| StepResult {
                    name: step.name.clone(),
                    status: StepStatus::Skipped,
                    exit_code: None,
                    output: match &failed_at {
                        Some(f) => format!("not run: step {f} failed"),
                        None => "not run".to_string(),
                    },
                    duration_ms: 0,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[tokio::test]
    async fn runs_argv_without_a_shell_and_kills_on_timeout() {
        let out = run_argv(
            &argv(&["echo", "a; rm -rf /", "$(id)"]),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
        assert_eq!(out.stdout, "a; rm -rf / $(id)\n");
        assert_eq!(out.exit_code, Some(0));
        let out = run_argv(
            &argv(&["sh", "-c", "echo err >&2; exit 3"]),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
        assert_eq!((out.exit_code, out.stderr.as_str()), (Some(3), "err\n"));
        let started = Instant::now();
        let e = run_argv(
            &argv(&["sh", "-c", "sleep 30 & sleep 30"]),
            Duration::from_millis(200),
        )
        .await
        .unwrap_err();
        assert!(matches!(e, RunError::Timeout { .. }), "{e}");
        assert!(started.elapsed() < Duration::from_secs(20));
        let e = run_argv(&argv(&["/nonexistent/neo-ir-x"]), Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(matches!(e, RunError::Spawn { .. }), "{e}");
        assert!(run_argv(&[], Duration::from_secs(1)).await.is_err());
    }

    #[tokio::test]
    async fn execution_records_every_step() {
        let t = Duration::from_secs(5);
        let mut s3 = Step::exec("three", &["sh", "-c", "exit 1"], t, false);
        s3.expect_exit = vec![0, 1];
        let plan = Plan {
            steps: vec![
                Step::exec("one", &["true"], t, false),
                Step::builtin("two", "x", "do x", t, false),
                s3,
                Step::exec("four", &["false"], t, false),
                Step::exec("five", &["true"], t, false),
                Step::builtin("six", "slow", "sleep", Duration::from_millis(50), false),
            ],
            notes: vec![],
        };
        let mut ex = Execution::new(&plan);
        assert!(ex.exec("one").await.is_ok());
        assert_eq!(
            ex.builtin("two", async { Ok((7, "did x".to_string())) })
                .await,
            Ok(7)
        );
        assert_eq!(ex.exec("three").await.unwrap().exit_code, Some(1));
        assert!(ex.exec("four").await.is_err());
        assert!(ex.exec("nope").await.is_err());
        let r = ex.finish();
        let st: Vec<StepStatus> = r.iter().map(|r| r.status).collect();
        assert_eq!(
            st,
            vec![
                StepStatus::Ok,
                StepStatus::Ok,
                StepStatus::Ok,
                StepStatus::Failed,
                StepStatus::Skipped,
                StepStatus::Skipped
            ]
        );
        assert_eq!(r[1].output, "did x");
        assert!(r[3].output.contains("exit code 1"), "{}", r[3].output);
        assert_eq!(r[4].output, "not run: step four failed");

        let mut ex = Execution::new(&plan);
        let slow = ex
            .builtin("six", async {
                tokio::time::sleep(Duration::from_secs(30)).await;
                Ok(((), String::new()))
            })
            .await;
        assert!(slow.is_err());
        ex.skip("one", "not needed");
        let r = ex.finish();
        assert_eq!(r[5].status, StepStatus::TimedOut);
        assert_eq!(
            (r[0].status, r[0].output.as_str()),
            (StepStatus::Skipped, "not needed")
        );
    }
}
