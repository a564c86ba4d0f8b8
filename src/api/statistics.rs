//! `GET /api/statistics?date=YYYY-MM-DD` (seed 004) or `?days=N` (the Python PBX's real
//! route): call statistics from the CDR store. The seed's keys are at the top level (`date`,
//! `total_calls`, `answered_calls`, `failed_calls`, `answer_rate`, `total_duration`,
//! `total_billsec`, `average_duration`), followed by the real route's sections (`overview`,
//! `daily_trends`, `hourly_distribution`, `top_callers`, `call_disposition`, `peak_hours`,
//! `average_metrics`, `call_quality`, `real_time`) over the same range.

use axum::Json;
use axum::extract::{Query, State};
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::cdr::{day_range, iso8601};
use super::error::ApiError;

#[derive(Debug, Deserialize)]
pub(crate) struct StatsQuery {
    date: Option<String>,
    days: Option<String>,
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

pub(crate) async fn get(
    State(st): State<AppState>,
    Query(q): Query<StatsQuery>,
) -> Result<Json<Value>, ApiError> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    let today = now - now.rem_euclid(86_400_000);
    let (from, to, label) = match (q.date.as_deref(), q.days.as_deref()) {
        (Some(d), _) => {
            let (a, b) = day_range(d).ok_or_else(|| {
                ApiError::validation(
                    "date",
                    "date:YYYY-MM-DD",
                    "date must be a calendar date YYYY-MM-DD",
                )
            })?;
            (a, b, d.to_owned())
        }
        (None, Some(n)) => {
            let days = n
                .parse::<i64>()
                .ok()
                .filter(|d| (1..=366).contains(d))
                .ok_or_else(|| {
                    ApiError::validation(
                        "days",
                        "integer:1-366",
                        "days must be an integer from 1 to 366",
                    )
                })?;
            let from = today - (days - 1) * 86_400_000;
            (from, today + 86_400_000, iso8601(from)[..10].to_owned())
        }
        (None, None) => (today, today + 86_400_000, iso8601(today)[..10].to_owned()),
    };
    let s = st.backend.cdr_summary(from, to).await?;
    let calls = st.backend.calls().await;
    let count = |d: &str| {
        s.by_disposition
            .iter()
            .find(|(k, _)| k == d)
            .map_or(0, |(_, n)| *n)
    };
    let answered = count("ANSWERED");
    let failed = s.total - answered;
    let answer_rate = if s.total > 0 {
        round2(100.0 * answered as f64 / s.total as f64)
    } else {
        0.0
    };
    let avg_duration = if s.total > 0 {
        round2(s.total_duration as f64 / s.total as f64)
    } else {
        0.0
    };
    let avg_billsec = if answered > 0 {
        round2(s.total_billsec as f64 / answered as f64)
    } else {
        0.0
    };
    let mut peak: Vec<(usize, i64)> = s
        .hourly
        .iter()
        .copied()
        .enumerate()
        .filter(|(_, n)| *n > 0)
        .collect();
    peak.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let disposition: serde_json::Map<String, Value> = s
        .by_disposition
        .iter()
        .map(|(k, n)| (k.to_ascii_lowercase(), json!(n)))
        .collect();
    Ok(Json(json!({
        "date": label,
        "total_calls": s.total,
        "answered_calls": answered,
        "failed_calls": failed,
        "answer_rate": answer_rate,
        "total_duration": s.total_duration,
        "total_billsec": s.total_billsec,
        "average_duration": avg_duration,
        "overview": {
            "total_calls": s.total,
            "answered_calls": answered,
            "missed_calls": count("NO ANSWER") + count("CANCELLED"),
            "busy_calls": count("BUSY"),
            "failed_calls": count("FAILED"),
            "answer_rate": answer_rate,
            "total_talk_time": s.total_billsec,
        },
        "daily_trends": s.daily.iter().map(|(day, n, a, b)| json!({
            "date": day, "total_calls": n, "answered_calls": a, "total_billsec": b,
        })).collect::<Vec<_>>(),
        "hourly_distribution": (0..24).map(|h| json!({"hour": h, "calls": s.hourly[h]}))
            .collect::<Vec<_>>(),
        "top_callers": s.top_callers.iter().map(|(ext, n, b)| json!({
            "extension": ext, "calls": n, "total_billsec": b,
        })).collect::<Vec<_>>(),
        "call_disposition": disposition,
        "peak_hours": peak.iter().take(3).map(|(h, n)| json!({"hour": h, "calls": n}))
            .collect::<Vec<_>>(),
        "average_metrics": {
            "average_duration": avg_duration,
            "average_billsec": avg_billsec,
        },
        "call_quality": {
            "mean_jitter_ms": s.mean_jitter_ms.map(round2),
            "packet_loss_pct": s.loss_pct.map(|v| (v * 1000.0).round() / 1000.0),
        },
        "real_time": {
            "active_calls": calls.len(),
            "answered_calls": calls.iter().filter(|c| c.answered).count(),
            "ringing_calls": calls.iter().filter(|c| !c.answered).count(),
        },
    })))
}
