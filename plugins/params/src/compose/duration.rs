//! Compose durations: Go's `time.ParseDuration` form (`1h30m`, `10s`,
//! `1.5s`, `500ms`, `2m`), or a bare integer of seconds.

/// Nanoseconds in one of Go's duration units.
fn unit_nanos(unit: &str) -> Option<u128> {
    Some(match unit {
        "ns" => 1,
        "us" | "µs" | "μs" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        _ => return None,
    })
}

/// Parse a duration, in whole seconds rounded up (`1.2s` is 2, `500ms` is
/// 1, `0s` is 0). At most `u32::MAX` seconds.
pub(super) fn duration_secs(s: &str) -> Result<u64, String> {
    let bad = || {
        format!(
            "`{}` is not a duration (e.g. `10s`, `1m30s`, `1.5s`, `500ms`, or a number of seconds)",
            s.chars().take(80).collect::<String>()
        )
    };
    let too_long = || format!("`{s}` is too long a duration");
    let text = s.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return match text.parse::<u64>() {
            Ok(n) if n <= u64::from(u32::MAX) => Ok(n),
            _ => Err(too_long()),
        };
    }
    let text = text.strip_prefix('+').unwrap_or(text);
    if text.is_empty() || text.starts_with('-') {
        return Err(bad());
    }
    let mut nanos: u128 = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let (int, after) = rest.split_at(int_len);
        let (frac, after) = match after.strip_prefix('.') {
            Some(a) => {
                let n = a.bytes().take_while(u8::is_ascii_digit).count();
                a.split_at(n)
            }
            None => ("", after),
        };
        if int.is_empty() && frac.is_empty() {
            return Err(bad());
        }
        let unit_len = after
            .char_indices()
            .find(|(_, c)| c.is_ascii_digit() || *c == '.')
            .map_or(after.len(), |(i, _)| i);
        let (unit, after) = after.split_at(unit_len);
        let per = unit_nanos(unit).ok_or_else(bad)?;
        if int.len() > 20 {
            return Err(too_long());
        }
        let whole: u128 = if int.is_empty() {
            0
        } else {
            int.parse().map_err(|_| bad())?
        };
        let frac = &frac[..frac.len().min(18)];
        let part: u128 = if frac.is_empty() {
            0
        } else {
            frac.parse::<u128>().map_err(|_| bad())? * per / 10u128.pow(frac.len() as u32)
        };
        nanos = whole
            .checked_mul(per)
            .and_then(|n| n.checked_add(part))
            .and_then(|n| n.checked_add(nanos))
            .ok_or_else(too_long)?;
        rest = after;
    }
    let secs = nanos.div_ceil(1_000_000_000);
    if secs > u128::from(u32::MAX) {
        return Err(too_long());
    }
    Ok(secs as u64)
}
