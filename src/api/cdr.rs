//! `GET /api/cdr?date=YYYY-MM-DD&limit=N` (seed 004): the calls of one UTC day as a bare array.

use axum::Json;
use axum::extract::{Query, State};
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::error::ApiError;

#[derive(Debug, Deserialize)]
pub(crate) struct CdrQuery {
    date: Option<String>,
    limit: Option<String>,
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `YYYY-MM-DD` → the unix-ms range of that UTC day.
pub(crate) fn day_range(date: &str) -> Option<(i64, i64)> {
    let b = date.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let num = |s: &str| s.parse::<i64>().ok();
    let (y, m, d) = (num(&date[0..4])?, num(&date[5..7])?, num(&date[8..10])?);
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days_in = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1..=12).contains(&m) || d < 1 || d > days_in[(m - 1) as usize] {
        return None;
    }
    let start = days_from_civil(y, m, d) * 86_400_000;
    Some((start, start + 86_400_000))
}

/// Unix ms → `YYYY-MM-DDTHH:MM:SSZ`.
pub(crate) fn iso8601(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        sod / 3600,
        (sod % 3600) / 60,
        sod % 60
    )
}

pub(crate) async fn list(
    State(st): State<AppState>,
    Query(q): Query<CdrQuery>,
) -> Result<Json<Value>, ApiError> {
    let (from, to) = match q.date.as_deref() {
        Some(d) => day_range(d).ok_or_else(|| ApiError::Validation {
            field: "date".into(),
            rule: "date:YYYY-MM-DD".into(),
            message: "date must be a calendar date YYYY-MM-DD".into(),
        })?,
        None => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as i64)
                .unwrap_or(0);
            let start = now - now.rem_euclid(86_400_000);
            (start, start + 86_400_000)
        }
    };
    let limit = match q.limit.as_deref() {
        None => 100,
        Some(l) => match l.parse::<u32>() {
            Ok(n) if (1..=10_000).contains(&n) => n,
            _ => {
                return Err(ApiError::Validation {
                    field: "limit".into(),
                    rule: "integer:1-10000".into(),
                    message: "limit must be an integer from 1 to 10000".into(),
                });
            }
        },
    };
    let rows = st.backend.cdrs(from, to, limit).await?;
    Ok(Json(Value::Array(
        rows.into_iter()
            .map(|r| {
                json!({
                    "call_id": r.call_id,
                    "from_extension": r.from_extension,
                    "to_extension": r.to_extension,
                    "start_time": iso8601(r.start_time),
                    "answer_time": r.answer_time.map(iso8601),
                    "end_time": iso8601(r.end_time),
                    "disposition": r.disposition.to_ascii_lowercase(),
                    "duration": r.duration,
                    "billsec": r.billsec,
                    "recording_file": r.recording_file,
                    "hangup_cause": r.hangup_cause,
                    "hung_up_by": r.hung_up_by,
                    "q850_cause": r.q850_cause,
                    "hangup_cause_text": crate::pbx::cause::text(r.q850_cause),
                    "codec_a": r.codec_a,
                    "codec_b": r.codec_b,
                    "rtp": { "a": leg_json(&r.rtp_a), "b": leg_json(&r.rtp_b) },
                })
            })
            .collect(),
    )))
}

fn leg_json(s: &crate::store::CdrRtpStats) -> Value {
    json!({
        "packets": s.packets,
        "bytes": s.bytes,
        "lost": s.lost,
        "jitter_ms": (s.jitter_ms * 100.0).round() / 100.0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(day_range("1970-01-01"), Some((0, 86_400_000)));
        assert_eq!(iso8601(0), "1970-01-01T00:00:00Z");
        let (s, e) = day_range("2026-12-01").unwrap();
        assert_eq!(iso8601(s), "2026-12-01T00:00:00Z");
        assert_eq!(iso8601(e - 1000), "2026-12-01T23:59:59Z");
        assert_eq!(
            iso8601(day_range("2024-02-29").unwrap().0),
            "2024-02-29T00:00:00Z"
        );
        for bad in [
            "2023-02-29",
            "2026-13-01",
            "2026-1-01",
            "yesterday",
            "",
            "2026-12-00",
        ] {
            assert_eq!(day_range(bad), None, "{bad}");
        }
    }
}
