//! How a room check chooses, among the rooms that need a fetch, the ones it fetches now:
//! pure functions of what the check saw (no database, no clock), so that the benchmark's
//! load sweep runs the very rules production runs (docs/architecture.md, "The plan").
//!
//! - **Pacing.** A scheduled check spends its share of each connection's window: what is
//!   left, less the reserve for syncs people start and one request for each check still
//!   to come, spread over those checks. A window's last check before its reset spends
//!   everything left, the reserve included (a request not spent by the reset is lost).
//!   When the rooms need more than the share, the budget is **tight**: as many rooms
//!   every check would spend the window before its reset.
//! - **Loss first.** Each room's observed rate predicts its unseen messages when the
//!   plan's next chance to fetch it comes; a room predicted to pass
//!   [`MESSAGES_PER_REQUEST`] by then would lose messages and is fetched first. Within
//!   the rooms at risk and within the rest, the most unseen first (at most 100: the
//!   most messages per request, which is what the budget's capture comes to), and of
//!   those alike, the one whose wait would lose most.
//! - **Gathering.** Under a tight budget, a room neither at risk nor past the freshness bound that has fewer than
//!   [`PlanSettings::gather_min`] unseen messages waits: its next fetch brings more
//!   messages for the same request. A room past the freshness bound may be fetched, in
//!   its place by unseen messages: under a tight budget, capture comes before freshness.
//!   Under a loose budget every room is fetched at once.
//! - **Above the ceiling.** What the rates need (requests per window) against what the
//!   budgets give, and the rooms that lose: those whose rate outruns one fetch per check
//!   interval, and those at risk this plan could not serve.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::chatwork::MESSAGES_PER_REQUEST;

/// The most rooms an above-the-ceiling report names.
pub const MAX_LOSING_ROOMS: usize = 20;

/// The knobs of the plan.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PlanSettings {
    /// Time between two checks.
    pub cadence: Duration,
    /// The length of a connection's rate window (Chatwork's: 5 minutes).
    pub window: Duration,
    /// The share of every window, in percent, a scheduled check leaves to syncs people
    /// start (rounded up to whole requests).
    pub reserve_percent: u32,
    /// Under a tight budget, the fewest unseen messages that get a room fetched before
    /// it is at risk or past the freshness bound.
    pub gather_min: i64,
    /// The longest a room with unseen messages or an edit waits under a tight budget.
    pub freshness_bound: Duration,
    /// Whether the plan is a scheduled check's (paced, within the share) or a person's
    /// sync's (every room that needs a fetch, as the budget allows).
    pub scheduled: bool,
}

impl PlanSettings {
    /// The requests of a window of `limit` a scheduled check leaves alone.
    pub fn reserve_of(&self, limit: i64) -> i64 {
        (limit.max(0) * i64::from(self.reserve_percent) + 99) / 100
    }
}

/// A room that needs a fetch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Need {
    pub room_id: i64,
    /// Messages it has that no fetch has seen (0 for an edit).
    pub unseen: i64,
    /// Its observed rate, messages per minute.
    pub rate_per_min: f64,
    /// Since when checks have found it needing a fetch.
    pub waiting_since: DateTime<Utc>,
    /// The requests its fetch costs: one for its messages, one for each other part
    /// (tasks, files, members) that needs a fetch too.
    pub requests: i64,
}

impl Need {
    /// Unseen messages predicted `after` from now at its rate.
    fn predicted(&self, after: Duration) -> f64 {
        self.unseen as f64 + self.rate_per_min * after.as_secs_f64() / 60.0
    }

    /// The messages a wait of `after` would lose: what passes 100 by then, less what had
    /// passed already (lost either way), at most a fetch's 100.
    fn loss_of_waiting(&self, after: Duration) -> f64 {
        let limit = MESSAGES_PER_REQUEST as f64;
        let over_now = (self.unseen as f64 - limit).max(0.0);
        ((self.predicted(after) - limit).max(0.0) - over_now).clamp(0.0, limit)
    }

    /// The messages a fetch now brings.
    fn brings(&self) -> i64 {
        self.unseen.clamp(0, MESSAGES_PER_REQUEST as i64)
    }
}

/// A connection's rate window as the check saw it after its own request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub limit: i64,
    pub remaining: i64,
    pub reset_at: DateTime<Utc>,
}

/// Why a room was planned (or would have been).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Urgency {
    /// Predicted to pass 100 unseen before the next chance.
    AtRisk,
    /// Waiting past the freshness bound.
    Overdue,
    /// Neither: fetched now only under a loose budget or with enough gathered.
    Ready,
}

/// A room the plan names, with the connection to fetch it through (an index into the
/// check's windows).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Planned {
    pub room_id: i64,
    pub connection: usize,
    pub urgency: Urgency,
}

/// A room that loses messages by the plan's estimate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Losing {
    pub room_id: i64,
    pub rate_per_min: f64,
    /// Messages a minute it loses at this rate and this budget (an estimate).
    pub loss_per_min: f64,
    /// Whether its rate outruns one fetch per check interval (only a webhook makes it
    /// whole).
    pub outruns_check: bool,
}

/// What the plan decided.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Plan {
    pub planned: Vec<Planned>,
    /// Fetches the budgets allowed this check (the sum of the shares).
    pub allowance: i64,
    /// The rooms needed more requests than the check's share: slow rooms gathered.
    pub tight: bool,
    /// Requests a window the observed rates need (each fetch bringing 100) plus the
    /// checks, against what the budgets give after the reserve.
    pub demand_per_window: f64,
    pub supply_per_window: i64,
    /// The rooms losing messages, the largest loss first (at most [`MAX_LOSING_ROOMS`]),
    /// and their loss added up (all of them).
    pub losing: Vec<Losing>,
    pub loss_per_min: f64,
}

impl Plan {
    pub fn above_ceiling(&self) -> bool {
        self.loss_per_min > 0.0
    }
}

/// How many fetches a scheduled check may plan through a connection with `window`: see
/// the module documentation. `now` is the check's time.
pub fn share(window: Option<Window>, now: DateTime<Utc>, settings: &PlanSettings) -> i64 {
    let Some(w) = window else {
        return 0;
    };
    let length = chrono::Duration::from_std(settings.window).unwrap_or(chrono::Duration::MAX);
    let cadence = chrono::Duration::from_std(settings.cadence).unwrap_or(chrono::Duration::MAX);
    // A window whose reset passed is whole again (the next reservation rolls it over).
    let (remaining, reset_in) = if w.reset_at <= now {
        (w.limit, length)
    } else {
        (w.remaining, w.reset_at - now)
    };
    let secs = |d: chrono::Duration| d.num_milliseconds().max(1) as f64 / 1000.0;
    if !settings.scheduled {
        // A person's sync: what the window has, and the next window once it opens.
        return remaining.max(0) + if reset_in < length { w.limit } else { 0 };
    }
    // The next window's first stretch until the next check, when it opens before then.
    let next = |until_next_check: chrono::Duration| -> i64 {
        let spendable =
            (w.limit - settings.reserve_of(w.limit) - checks_in(length, cadence)).max(0) as f64;
        (spendable * secs(until_next_check) / secs(length)).floor() as i64
    };
    if reset_in <= cadence {
        // The window's last check: everything it has left, the reserve included.
        return remaining.max(0) + next(cadence - reset_in);
    }
    let checks_to_come = (secs(reset_in) / secs(cadence)).ceil() as i64 - 1;
    let spendable = (remaining - settings.reserve_of(w.limit) - checks_to_come).max(0) as f64;
    (spendable * secs(cadence) / secs(reset_in)).ceil() as i64
}

/// Checks a window of `length` holds at `cadence`.
fn checks_in(length: chrono::Duration, cadence: chrono::Duration) -> i64 {
    let cadence = cadence.num_milliseconds().max(1);
    (length.num_milliseconds() + cadence - 1) / cadence
}

/// Plans a check: `needs` are the rooms that need a fetch, `members[room]` the
/// connections (indexes into `windows`) that can fetch each, `now` the check's time.
pub fn plan(
    needs: &[Need],
    members: &HashMap<i64, Vec<usize>>,
    windows: &[Option<Window>],
    now: DateTime<Utc>,
    settings: &PlanSettings,
) -> Plan {
    let limit = MESSAGES_PER_REQUEST as f64;
    let cadence_min = settings.cadence.as_secs_f64().max(1.0) / 60.0;
    // The next chance to fetch a room left now: the next check, and its fetch's wait in
    // the queue (half an interval, by estimate).
    let horizon = settings.cadence.mul_f64(1.5);
    let urgency = |n: &Need| {
        if n.predicted(horizon) >= limit {
            Urgency::AtRisk
        } else if now - n.waiting_since
            >= chrono::Duration::from_std(settings.freshness_bound).unwrap_or(chrono::Duration::MAX)
        {
            Urgency::Overdue
        } else {
            Urgency::Ready
        }
    };
    let mut ranked: Vec<(Urgency, &Need)> = needs.iter().map(|n| (urgency(n), n)).collect();
    ranked.sort_by(|(ua, a), (ub, b)| {
        let at_risk = |u: &Urgency| *u == Urgency::AtRisk;
        at_risk(ub)
            .cmp(&at_risk(ua))
            .then(b.brings().cmp(&a.brings()))
            .then_with(|| {
                b.loss_of_waiting(horizon)
                    .total_cmp(&a.loss_of_waiting(horizon))
            })
            .then(a.waiting_since.cmp(&b.waiting_since))
            .then(a.room_id.cmp(&b.room_id))
    });

    // Tight: the rooms need more requests than the check's paced share: as many rooms
    // every check would spend the windows before their resets. Then slow rooms gather.
    let mut left: Vec<i64> = windows.iter().map(|w| share(*w, now, settings)).collect();
    let allowance: i64 = left.iter().sum();
    let demand: i64 = needs.iter().map(|n| n.requests.max(1)).sum();
    let tight = settings.scheduled && demand > allowance;
    let mut planned = Vec::new();
    let mut unserved = Vec::new();
    for (urgency, need) in &ranked {
        let gathering = tight && *urgency == Urgency::Ready && need.unseen < settings.gather_min;
        // Each room goes to the member with the most left.
        let best = members.get(&need.room_id).and_then(|m| {
            m.iter()
                .copied()
                .filter(|&i| i < left.len())
                .max_by_key(|&i| (left[i], std::cmp::Reverse(i)))
        });
        match best {
            Some(best) if !gathering && (!settings.scheduled || left[best] > 0) => {
                left[best] -= need.requests.max(1);
                planned.push(Planned {
                    room_id: need.room_id,
                    connection: best,
                    urgency: *urgency,
                });
            }
            _ => unserved.push((*urgency, *need)),
        }
    }

    // Above the ceiling: rooms that outrun one fetch per interval lose the excess even
    // when fetched every check; at-risk rooms left unplanned lose what passes 100 by
    // their next chance.
    let mut losing = Vec::new();
    for need in needs {
        let per_interval = need.rate_per_min * cadence_min;
        if per_interval > limit {
            losing.push(Losing {
                room_id: need.room_id,
                rate_per_min: need.rate_per_min,
                loss_per_min: (per_interval - limit) / cadence_min,
                outruns_check: true,
            });
        }
    }
    for (urgency, need) in &unserved {
        let outruns = need.rate_per_min * cadence_min > limit;
        if *urgency == Urgency::AtRisk && !outruns {
            losing.push(Losing {
                room_id: need.room_id,
                rate_per_min: need.rate_per_min,
                loss_per_min: need.loss_of_waiting(horizon) / (horizon.as_secs_f64() / 60.0),
                outruns_check: false,
            });
        }
    }
    losing.sort_by(|a, b| {
        b.loss_per_min
            .total_cmp(&a.loss_per_min)
            .then(a.room_id.cmp(&b.room_id))
    });
    let loss_per_min = losing.iter().map(|l| l.loss_per_min).sum();
    losing.truncate(MAX_LOSING_ROOMS);

    let window_min = settings.window.as_secs_f64() / 60.0;
    let checks = (settings.window.as_secs_f64() / settings.cadence.as_secs_f64().max(1.0)).ceil();
    let demand_per_window = needs
        .iter()
        .map(|n| n.rate_per_min * window_min / limit)
        .sum::<f64>()
        + checks;
    let supply_per_window = windows
        .iter()
        .flatten()
        .map(|w| (w.limit - settings.reserve_of(w.limit)).max(0))
        .sum();
    Plan {
        planned,
        allowance,
        tight,
        demand_per_window,
        supply_per_window,
        losing,
        loss_per_min,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap()
    }

    fn settings() -> PlanSettings {
        PlanSettings {
            cadence: Duration::from_secs(15),
            window: Duration::from_secs(300),
            reserve_percent: 10,
            gather_min: 50,
            freshness_bound: Duration::from_secs(600),
            scheduled: true,
        }
    }

    fn need(room_id: i64, unseen: i64, rate_per_min: f64, waiting_secs: i64) -> Need {
        Need {
            room_id,
            unseen,
            rate_per_min,
            waiting_since: at(-waiting_secs),
            requests: 1,
        }
    }

    /// One connection whose window, reset in `reset_in` s, has `remaining` left.
    fn window(remaining: i64, reset_in: i64) -> Vec<Option<Window>> {
        vec![Some(Window {
            limit: 300,
            remaining,
            reset_at: at(reset_in),
        })]
    }

    fn all_on_one(needs: &[Need]) -> HashMap<i64, Vec<usize>> {
        needs.iter().map(|n| (n.room_id, vec![0])).collect()
    }

    fn order(plan: &Plan) -> Vec<i64> {
        plan.planned.iter().map(|p| p.room_id).collect()
    }

    /// A scheduled check's plan of `needs`, all on one connection whose window, reset in
    /// `reset_in` s, has `remaining` left.
    fn plan_one(needs: &[Need], remaining: i64, reset_in: i64) -> Plan {
        plan(
            needs,
            &all_on_one(needs),
            &window(remaining, reset_in),
            at(0),
            &settings(),
        )
    }

    #[test]
    fn the_share_spreads_what_is_left_over_the_checks_to_come() {
        let s = settings();
        // 300 s to the reset at 15 s: 20 checks, 19 to come; (299 - 30 - 19) / 20.
        assert_eq!(share(window(299, 300)[0], at(0), &s), 13);
        // Half the window gone with 200 left: (200 - 30 - 9) over 10 checks.
        assert_eq!(share(window(200, 150)[0], at(0), &s), 17);
        // The last check before the reset spends everything, the reserve too, and the
        // next window's first stretch.
        assert_eq!(share(window(40, 10)[0], at(0), &s), 40 + 4);
        // Nothing left but the reserve: nothing until the window's end.
        assert_eq!(share(window(30, 200)[0], at(0), &s), 0);
        // A window whose reset passed is whole again.
        assert_eq!(share(window(0, -5)[0], at(0), &s), 13);
        assert_eq!(share(None, at(0), &s), 0);
        // A person's sync: all of it, and the next window.
        let person = PlanSettings {
            scheduled: false,
            ..s
        };
        assert_eq!(share(window(20, 100)[0], at(0), &person), 320);
    }

    #[test]
    fn a_room_predicted_to_pass_100_comes_before_one_with_more_unseen_now_but_slower() {
        // 60 unseen at 200 a minute: 75 more by the next chance (22.5 s), 135 > 100.
        // 90 unseen, quiet: stays at 90.
        let needs = [need(1, 90, 0.0, 30), need(2, 60, 200.0, 0)];
        let plan = plan_one(&needs, 299, 300);
        assert_eq!(order(&plan), [2, 1]);
        assert_eq!(plan.planned[0].urgency, Urgency::AtRisk);
        // With one fetch to give (a window that can spend 1), the fast room gets it.
        let plan = super::plan(
            &needs,
            &all_on_one(&needs),
            &window(31 + 19, 300),
            at(0),
            &settings(),
        );
        assert_eq!(order(&plan), [2]);
    }

    #[test]
    fn a_slow_room_waits_under_a_tight_budget_and_not_under_a_loose_one() {
        // Loose: three slow rooms, a window that can still spend 250.
        let slow = [
            need(1, 3, 0.1, 60),
            need(2, 5, 0.2, 30),
            need(3, 1, 0.0, 10),
        ];
        let plan = plan_one(&slow, 299, 300);
        assert!(!plan.tight);
        assert_eq!(order(&plan), [2, 1, 3]);

        // Tight: 21 rooms need a fetch, and the window (reset in 20 s, 50 left) can
        // still spend 19, a share of 15 now. The hot room, the one
        // that gathered enough and the one past the freshness bound are fetched; the slow
        // ones gather, though the share had room for them.
        let mut needs: Vec<Need> = (10..28).map(|id| need(id, 3, 0.1, 60)).collect();
        needs.push(need(1, 70, 100.0, 0));
        needs.push(need(2, 2, 0.0, 700));
        needs.push(need(3, 55, 1.0, 120));
        let plan = plan_one(&needs, 50, 20);
        assert!(plan.tight);
        assert_eq!(plan.allowance, 15);
        // At risk first; then by the messages a fetch brings, the room past the bound
        // too.
        assert_eq!(order(&plan), [1, 3, 2]);
        assert_eq!(
            plan.planned.iter().map(|p| p.urgency).collect::<Vec<_>>(),
            [Urgency::AtRisk, Urgency::Ready, Urgency::Overdue]
        );
    }

    #[test]
    fn a_persons_sync_plans_every_room_however_tight() {
        let needs: Vec<Need> = (1..=40).map(|id| need(id, 1, 0.0, 0)).collect();
        let person = PlanSettings {
            scheduled: false,
            ..settings()
        };
        let plan = plan(
            &needs,
            &all_on_one(&needs),
            &window(10, 100),
            at(0),
            &person,
        );
        assert_eq!(plan.planned.len(), 40);
        assert!(!plan.tight);
    }

    #[test]
    fn each_room_goes_to_the_member_with_the_most_left() {
        let needs = [
            need(1, 10, 0.0, 0),
            need(2, 10, 0.0, 0),
            need(3, 10, 0.0, 0),
        ];
        let windows = vec![window(299, 300)[0], window(40, 300)[0]];
        let members: HashMap<i64, Vec<usize>> =
            [(1, vec![0, 1]), (2, vec![1]), (3, vec![0, 1])].into();
        let plan = plan(&needs, &members, &windows, at(0), &settings());
        let by_room: HashMap<i64, usize> = plan
            .planned
            .iter()
            .map(|p| (p.room_id, p.connection))
            .collect();
        assert_eq!(by_room[&1], 0);
        assert_eq!(by_room[&3], 0);
        // Room 2 only through the second, whose share (40 - 30 - 19 < 0) is nothing.
        assert!(!by_room.contains_key(&2));
    }

    #[test]
    fn above_the_ceiling_the_plan_names_the_rooms_that_lose() {
        // 500 a minute outruns a 15 s check (125 per interval): 25 lost each interval,
        // 100 a minute, fetched or not.
        // Then 30 at-risk rooms against a window that can spend 19 before its reset, 15
        // now (14 after the first): the 16 left lose what passes 100.
        let mut needs = vec![need(1, 120, 500.0, 0)];
        needs.extend((100..130).map(|id| need(id, 80, 60.0, 0)));
        needs.push(need(2, 3, 0.1, 0));
        let plan = plan_one(&needs, 50, 20);
        assert!(plan.above_ceiling());
        assert!(plan.tight);
        assert_eq!(plan.planned.len(), 15);
        let first = plan.losing[0];
        assert_eq!(first.room_id, 1);
        assert!(first.outruns_check);
        assert!((first.loss_per_min - 100.0).abs() < 1e-9);
        // Each unserved at-risk room: 80 + 60 × 22.5 s = 102.5 by the next chance, 2.5
        // over, per 22.5 s.
        let unserved: Vec<&Losing> = plan.losing.iter().filter(|l| !l.outruns_check).collect();
        assert_eq!(unserved.len(), 16);
        assert!((unserved[0].loss_per_min - 2.5 / 0.375).abs() < 1e-9);
        assert!((plan.loss_per_min - (100.0 + 16.0 * 2.5 / 0.375)).abs() < 1e-6);
        // 500 + 30 × 60 + 0.1 a minute, 5 minutes, 100 a request; plus 20 checks.
        let expected = (500.0 + 1800.0 + 0.1) * 5.0 / 100.0 + 20.0;
        assert!((plan.demand_per_window - expected).abs() < 1e-9);
        assert_eq!(plan.supply_per_window, 270);
    }

    #[test]
    fn under_the_ceiling_nothing_is_reported_lost() {
        let needs = [need(1, 40, 20.0, 0), need(2, 3, 0.5, 0)];
        let plan = plan_one(&needs, 299, 300);
        assert!(!plan.above_ceiling());
        assert!(plan.losing.is_empty());
    }
}
