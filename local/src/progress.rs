//! The live view of jobs on the terminal: a line per running job (processed/total items,
//! errors) that updates in place when the terminal allows it, and a one-line summary when
//! each job ends. Without a terminal (piped output, tests) it prints a line when a job
//! starts and when it ends.

use std::collections::{HashMap, HashSet};
use std::io::{IsTerminal, Write};
use std::time::Duration;

use cwsync::jobs::{self, Job, JobFilter, JobStatus, Registry};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// How often the view looks at the jobs.
const TICK: Duration = Duration::from_millis(400);

/// Writes to stdout, ignoring a reader that went away (a pipe closed by whoever started
/// us is no reason to stop).
pub fn say(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}

/// What people call a job of its type (`rooms sync`), or its `job_type` value.
fn kind(registry: &Registry, job: &Job) -> &'static str {
    registry
        .get(job.job_type)
        .map_or(job.job_type.as_str(), |t| t.label())
}

fn short(id: Uuid) -> String {
    id.simple().to_string()[..8].to_owned()
}

/// The running line of a job.
fn running_line(registry: &Registry, job: &Job, progress: &jobs::Progress) -> String {
    let unit = registry.get(job.job_type).map_or("items", |t| t.items());
    let mut line = format!(
        "{} {} {}: {}/{} {unit}",
        kind(registry, job),
        short(job.id),
        job.status.as_str(),
        progress.finished,
        progress.total
    );
    if progress.fetched > 0 {
        line.push_str(&format!(", {} messages", progress.fetched));
    }
    if progress.failed > 0 {
        line.push_str(&format!(", {} failed", progress.failed));
    }
    line
}

/// The one-line summary of a finished job.
pub fn summary_line(registry: &Registry, job: &Job) -> String {
    let took = match (job.started_at, job.finished_at) {
        (Some(start), Some(end)) => format!(
            " in {:.1} s",
            (end - start).num_milliseconds() as f64 / 1000.0
        ),
        _ => String::new(),
    };
    let mark = match job.status {
        JobStatus::Completed => "done",
        JobStatus::Failed => "FAILED",
        JobStatus::Canceled => "canceled",
        _ => "?",
    };
    let detail = job
        .result
        .as_ref()
        .and_then(|result| registry.get(job.job_type)?.describe(result))
        .unwrap_or_else(|| "no result".into());
    let error = job
        .error
        .as_ref()
        .map(|e| format!(": {}", e.message))
        .unwrap_or_default();
    format!(
        "[{mark}] {} {}{took}: {detail}{error}\n",
        kind(registry, job),
        short(job.id)
    )
}

/// The line for a scheduled room check, unless it found nothing to do (a check every
/// minute that says so each time would drown the rest).
pub fn check_line(report: &cwsync::sync::check::RoomCheckReport) -> Option<String> {
    if report.changed == 0 && report.registered == 0 {
        return None;
    }
    let by = report
        .job_id
        .map(|job| format!(" by messages sync {}", short(job)))
        .unwrap_or_default();
    Some(format!("[check] {}{by}\n", report.describe()))
}

/// The line that sums up the webhook deliveries of the last `every`, unless there were
/// none.
pub fn webhook_line(tally: &cwsync::api::DeliveryTally, every: Duration) -> Option<String> {
    if tally.is_empty() {
        return None;
    }
    let span = match every.as_secs() {
        60 => "the last minute".to_owned(),
        s if s % 60 == 0 => format!("the last {} minutes", s / 60),
        s => format!("the last {s} s"),
    };
    let mut line = format!(
        "[webhooks] {span}: {} stored, {} ignored, {} refused",
        tally.stored, tally.ignored, tally.refused
    );
    if tally.failed > 0 {
        line.push_str(&format!(", {} not stored (database)", tally.failed));
    }
    line.push('\n');
    Some(line)
}

/// Prints [`webhook_line`] every `every` until `stop` is cancelled: what the deliveries
/// came to, in place of a log line each.
pub async fn webhook_lines(every: Duration, stop: CancellationToken) {
    let mut ticker = tokio::time::interval(every);
    ticker.tick().await;
    loop {
        // The deliveries since the last line are summed up once more when stopping.
        let stopping = tokio::select! {
            _ = stop.cancelled() => true,
            _ = ticker.tick() => false,
        };
        if let Some(line) = webhook_line(&cwsync::api::take_webhook_tally(), every) {
            say(&line);
        }
        if stopping {
            return;
        }
    }
}

/// Watches the jobs until `stop` is cancelled.
pub async fn watch(pool: PgPool, registry: Registry, stop: CancellationToken) {
    let interactive = std::io::stderr().is_terminal();
    let bars = MultiProgress::with_draw_target(if interactive {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    });
    let style = ProgressStyle::with_template("{spinner} {msg}")
        .expect("a valid template")
        .tick_chars("⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏ ");
    let mut shown: HashMap<Uuid, ProgressBar> = HashMap::new();
    let mut reported: HashSet<Uuid> = HashSet::new();
    let started = chrono::Utc::now();
    let mut ticker = tokio::time::interval(TICK);
    loop {
        // A last look when stopping, so that a job that ended just before is reported.
        let stopping = tokio::select! {
            _ = stop.cancelled() => true,
            _ = ticker.tick() => false,
        };
        let filter = JobFilter {
            limit: 50,
            ..Default::default()
        };
        let Ok(recent) = jobs::list(&pool, &filter).await else {
            if stopping {
                break;
            }
            continue;
        };
        for job in recent {
            if reported.contains(&job.id) {
                continue;
            }
            if !job.status.is_terminal() {
                let progress = jobs::progress(&pool, job.id).await.unwrap_or_default();
                let line = running_line(&registry, &job, &progress);
                match shown.get(&job.id) {
                    Some(bar) => bar.set_message(line),
                    None => {
                        let bar = bars.add(ProgressBar::new_spinner().with_style(style.clone()));
                        bar.enable_steady_tick(Duration::from_millis(120));
                        if !interactive {
                            say(&format!("[started] {line}\n"));
                        }
                        bar.set_message(line);
                        shown.insert(job.id, bar);
                    }
                }
            } else if shown.contains_key(&job.id) || job.created_at >= started {
                // Ended: while shown, or so fast that it was never shown.
                if let Some(bar) = shown.remove(&job.id) {
                    bar.finish_and_clear();
                }
                let line = summary_line(&registry, &job);
                if interactive {
                    let _ = bars.println(line.trim_end());
                } else {
                    say(&line);
                }
                reported.insert(job.id);
            }
        }
        if stopping {
            break;
        }
    }
    for bar in shown.values() {
        bar.finish_and_clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cwsync::api::DeliveryTally;

    #[test]
    fn a_webhook_line_sums_up_the_deliveries_and_none_is_silent() {
        let minute = Duration::from_secs(60);
        assert_eq!(webhook_line(&DeliveryTally::default(), minute), None);
        let tally = DeliveryTally {
            stored: 4,
            ignored: 1,
            refused: 2,
            failed: 0,
        };
        assert_eq!(
            webhook_line(&tally, minute).as_deref(),
            Some("[webhooks] the last minute: 4 stored, 1 ignored, 2 refused\n")
        );
        let failed = DeliveryTally { failed: 3, ..tally };
        assert_eq!(
            webhook_line(&failed, Duration::from_secs(5)).as_deref(),
            Some(
                "[webhooks] the last 5 s: 4 stored, 1 ignored, 2 refused, 3 not stored (database)\n"
            )
        );
    }
}
