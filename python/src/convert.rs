//! Python values as the host library's types: ports, counts, candidates
//! and port blocks, with hbutils' reading of each.

use crate::errors::{invalid, out_of_range};
use port_host::{Candidates, FamilyStatus, PortBlock, PortRange};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBool, PyInt, PyRange};

/// The longest explicit candidate list taken (2 bytes each in the guest's
/// memory); a longer one is refused rather than risk the store's memory bound
/// stopping the session that holds the host's reservations.
pub const MAX_EXPLICIT: usize = 1 << 20;

/// An integer argument: `operator.index` semantics (a float, a string or
/// `None` is a `TypeError`, as in hbutils), but a bool is refused. `None`
/// when it does not fit in 64 bits: no port and no count either.
pub fn integer(value: &Bound<'_, PyAny>, what: &str) -> PyResult<Option<i64>> {
    // A plain int (nearly every candidate) is read at once; an exact check
    // leaves bools and other int subclasses to the rules below.
    if let Ok(int) = value.cast_exact::<PyInt>() {
        return Ok(int.extract::<i64>().ok());
    }
    if value.is_instance_of::<PyBool>() {
        return Err(invalid(format!(
            "a bool is not a {what}: {}",
            value.repr()?
        )));
    }
    static INDEX: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    let index = INDEX
        .import(value.py(), "operator", "index")?
        .call1((value,))?;
    Ok(index.extract::<i64>().ok())
}

/// A port argument: 0 to 65535 (the component answers port 0 itself).
pub fn port(value: &Bound<'_, PyAny>) -> PyResult<u16> {
    match integer(value, "port")? {
        Some(n) => u16::try_from(n)
            .map_err(|_| out_of_range(format!("{n} is not a TCP port (1 to 65535)"))),
        None => Err(out_of_range(format!(
            "{} is not a TCP port (1 to 65535)",
            value.repr()?
        ))),
    }
}

pub fn count(value: &Bound<'_, PyAny>) -> PyResult<u32> {
    match integer(value, "count")?.map(u32::try_from) {
        Some(Ok(n)) => Ok(n),
        _ => Err(invalid(format!(
            "count must be 1 to 64512, not {}",
            value.repr()?
        ))),
    }
}

/// `strict` as hbutils reads it: by truth value, `True` when not given.
pub fn truthy(strict: Option<&Bound<'_, PyAny>>) -> PyResult<bool> {
    strict.map_or(Ok(true), |strict| strict.is_truthy())
}

pub fn candidates_of(ports: Option<&Bound<'_, PyAny>>) -> PyResult<Option<Candidates>> {
    ports.map_or(Ok(None), candidates)
}

/// `ports` as the host's candidates: a `range` stays a range (never
/// expanded), anything else iterable becomes a list.
fn candidates(ports: &Bound<'_, PyAny>) -> PyResult<Option<Candidates>> {
    if ports.is_none() {
        return Ok(None);
    }
    if let Ok(range) = ports.cast::<PyRange>() {
        return range_of(range).map(|range| Some(Candidates::Range(range)));
    }
    // Any iterable, a list too: walking a list by index measured no faster.
    let mut list = Vec::new();
    for item in ports.try_iter()? {
        push(&mut list, &item?)?;
    }
    Ok(Some(Candidates::Explicit(list)))
}

fn range_of(range: &Bound<'_, PyRange>) -> PyResult<PortRange> {
    let bound =
        |name: &str| -> PyResult<Option<i64>> { Ok(range.getattr(name)?.extract::<i64>().ok()) };
    let (start, stop, step) = (bound("start")?, bound("stop")?, bound("step")?);
    let fits = |n: Option<i64>| n.and_then(|n| u32::try_from(n).ok());
    match (
        fits(start),
        fits(stop),
        step.and_then(|s| i32::try_from(s).ok()),
    ) {
        (Some(start), Some(end), Some(step)) => Ok(PortRange { start, end, step }),
        _ => Err(invalid(format!(
            "{}: a range's bounds must be 0 to 65536 and its step fit in 32 bits",
            range.repr()?
        ))),
    }
}

/// One explicit candidate. hbutils keeps only candidates >= 1024, so a
/// negative one is dropped there without a word; one above 65535 fails its
/// socket call.
fn push(list: &mut Vec<u16>, item: &Bound<'_, PyAny>) -> PyResult<()> {
    let n = match integer(item, "port")? {
        Some(n) if n < 0 => return Ok(()),
        Some(n) => n,
        None if item.lt(0)? => return Ok(()),
        None => {
            return Err(out_of_range(format!(
                "{} is not a TCP port (1 to 65535)",
                item.repr()?
            )));
        }
    };
    let port = u16::try_from(n)
        .map_err(|_| out_of_range(format!("{n} is not a TCP port (1 to 65535)")))?;
    if list.len() == MAX_EXPLICIT {
        return Err(invalid(format!(
            "more than {MAX_EXPLICIT} candidates; pass a range instead"
        )));
    }
    list.push(port);
    Ok(())
}

/// `Host(port_block=...)`: a `range` with step 1 or a `(start, end)` pair.
pub fn port_block_of(block: &Bound<'_, PyAny>) -> PyResult<PortBlock> {
    let (start, end) = if let Ok(range) = block.cast::<PyRange>() {
        if range.getattr("step")?.extract::<i64>().ok() != Some(1) {
            return Err(invalid(format!(
                "{}: a port block is a range with step 1",
                block.repr()?
            )));
        }
        (range.getattr("start")?, range.getattr("stop")?)
    } else {
        let (start, end): (Bound<'_, PyAny>, Bound<'_, PyAny>) = block
            .extract()
            .map_err(|_| PyTypeError::new_err("port_block is a range or a (start, end) pair"))?;
        (start, end)
    };
    let bound = |value: &Bound<'_, PyAny>| -> PyResult<u32> {
        integer(value, "port")?
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| {
                invalid(format!(
                    "{}: no port block",
                    block.repr().map(|r| r.to_string()).unwrap_or_default()
                ))
            })
    };
    PortBlock::new(bound(&start)?..bound(&end)?).map_err(|bad| invalid(bad.to_string()))
}

/// A per-family answer of `probe_port`, as Python reads it.
pub fn family(status: FamilyStatus) -> &'static str {
    match status {
        FamilyStatus::Free => "free",
        FamilyStatus::InUse => "in-use",
        FamilyStatus::Denied => "denied",
        FamilyStatus::Unsupported => "unsupported",
    }
}
