"""Nights of CPAP breathing-machine recordings with ground truth, in ResMed's EDF layout.

No real CPAP night can be shipped, so :func:`make_cpap_nights` makes them:
breathing with a drifting rate and depth, scored apneas and hypopneas
(physiology, not faults) and injected device faults (mask leaks, mask-off
gaps, sensor flat-lines, pressure spikes), written as one ``_BRP``, ``_PLD``
and ``_EVE`` EDF file per night, the way ResMed machines write their SD card.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from lab._validation import _check_int

__all__ = ["make_cpap_nights", "BRP_RATE", "PLD_RATE", "FAULT_KINDS", "CHANNELS"]

#: Sampling rate (Hz) of the high-rate file: flow and mask pressure.
BRP_RATE = 25.0
#: Sampling rate (Hz) of the low-rate file: leak, breathing rate, volumes, pressure.
PLD_RATE = 0.5
#: Channels of each file, with their physical unit and the physical range written to the EDF.
CHANNELS = {
    "BRP": {"Flow": ("L/s", (-3.0, 3.0)), "Press": ("cmH2O", (-5.0, 40.0))},
    "PLD": {"Leak": ("L/min", (-10.0, 120.0)), "RespRate": ("bpm", (-10.0, 60.0)),
            "TidVol": ("L", (-1.0, 4.0)), "MinVent": ("L/min", (-5.0, 40.0)),
            "MaskPress": ("cmH2O", (-5.0, 40.0))},
}
#: Fault kinds and their (size, duration in seconds) ranges (the issue's specification).
FAULT_KINDS = {
    "leak": {"level": (30.0, 60.0), "seconds": (120, 1200)},  # L/min, 2-20 min
    "mask_off": {"seconds": (60, 600)},  # 1-10 min
    "flatline": {"seconds": (120, 1800)},  # 2-30 min
    "spike": {"level": (5.0, 10.0), "seconds": (1, 5)},  # cmH2O, 1-5 s
}
#: Scored respiratory events per hour of sleep, and their flow factor and duration (s).
EVENTS_PER_HOUR = (3.0, 10.0)
EVENT_KINDS = {"apnea": (0.0, 0.08), "hypopnea": (0.35, 0.6)}
EVENT_SECONDS = (10, 60)
#: Minutes kept free of faults at the start and end of a night, and between faults.
MARGIN_MIN = 5


def _drift(rng: np.random.Generator, n: int, lo: float, hi: float, knot_s: float,
           rate: float) -> np.ndarray:
    """A smooth random walk between ``lo`` and ``hi`` with one knot every ``knot_s`` seconds."""
    knots = max(int(n / rate / knot_s) + 2, 2)
    walk = np.cumsum(rng.normal(0, 0.25, knots))
    walk = (walk - walk.min()) / max(np.ptp(walk), 1e-9)
    walk = 0.5 + (walk - 0.5) * rng.uniform(0.4, 1.0) + rng.uniform(-0.2, 0.2)
    walk = np.clip(walk, 0.0, 1.0)
    x = np.interp(np.arange(n) / rate, np.arange(knots) * knot_s, walk)
    return lo + (hi - lo) * x


def _block_mean(x: np.ndarray, k: int) -> np.ndarray:
    return x[: len(x) // k * k].reshape(-1, k).mean(axis=1)


def _one_night(rng: np.random.Generator, night: str, start: pd.Timestamp, seconds: int,
               faults_per_night: int):
    n = int(seconds * BRP_RATE)
    k = int(BRP_RATE / PLD_RATE)  # BRP samples per PLD sample
    rate_bpm = _drift(rng, n, 10.0, 20.0, 300.0, BRP_RATE)
    depth = _drift(rng, n, 0.25, 0.55, 400.0, BRP_RATE)  # peak inspiratory flow, L/s
    phase = np.cumsum(2 * np.pi * rate_bpm / 60.0 / BRP_RATE) + rng.uniform(0, 2 * np.pi)
    shape = np.sin(phase) + 0.15 * np.sin(2 * phase + 0.7)

    # scored apneas and hypopneas: flow reduced by a factor, smooth edges
    factor = np.ones(n)
    events = []
    n_events = rng.poisson(rng.uniform(*EVENTS_PER_HOUR) * seconds / 3600)
    for _ in range(n_events):
        kind = str(rng.choice(list(EVENT_KINDS)))
        dur = int(rng.integers(EVENT_SECONDS[0], EVENT_SECONDS[1] + 1))
        at = int(rng.integers(60, seconds - dur - 60))
        a, b = int(at * BRP_RATE), int((at + dur) * BRP_RATE)
        ramp = min(int(2 * BRP_RATE), (b - a) // 4)
        level = rng.uniform(*EVENT_KINDS[kind])
        env = np.full(b - a, level)
        env[:ramp] = np.linspace(1, level, ramp)
        env[-ramp:] = np.linspace(level, 1, ramp)
        factor[a:b] = np.minimum(factor[a:b], env)
        events.append((at, dur, kind))
    flow = depth * factor * shape + rng.normal(0, 0.02, n)
    base = rng.uniform(7.0, 12.0)
    press = (base + _drift(rng, n, -0.5, 0.5, 900.0, BRP_RATE) - 0.6 * flow
             + rng.normal(0, 0.05, n))

    m = n // k
    t_pld = np.arange(m) * k
    resp = rate_bpm[t_pld] * (_block_mean(factor, k) > 0.2) + np.abs(rng.normal(0, 0.3, m))
    tidal = (depth[t_pld] * _block_mean(factor, k) * 60.0 / rate_bpm[t_pld] / np.pi
             + np.abs(rng.normal(0, 0.02, m)))
    pld = {
        "Leak": _drift(rng, m, 2.0, 8.0, 600.0, PLD_RATE) + rng.normal(0, 0.3, m),
        "RespRate": resp,
        "TidVol": tidal,
        "MinVent": tidal * rate_bpm[t_pld] + rng.normal(0, 0.2, m),
        "MaskPress": _block_mean(press, k),
    }
    brp = {"Flow": flow, "Press": press}

    # faults, in disjoint slots away from the night's edges
    truth = []
    taken: list[tuple[int, int]] = []
    kinds = [str(x) for x in rng.permutation(list(FAULT_KINDS))]
    for i in range(faults_per_night):
        kind = kinds[i % len(kinds)]
        lo_s, hi_s = FAULT_KINDS[kind]["seconds"]
        for _ in range(100):
            dur = int(rng.integers(lo_s, hi_s + 1))
            at = int(rng.integers(MARGIN_MIN * 60, max(seconds - MARGIN_MIN * 60 - dur,
                                                       MARGIN_MIN * 60 + 1)))
            if at + dur < seconds - 60 and all(
                    at + dur + MARGIN_MIN * 60 < a or at > b + MARGIN_MIN * 60
                    for a, b in taken):
                break
        else:
            continue  # the night is full
        taken.append((at, at + dur))
        a, b = int(at * BRP_RATE), int((at + dur) * BRP_RATE)
        pa, pb = at // 2, -(-(at + dur) // 2)
        if kind == "leak":
            level = rng.uniform(*FAULT_KINDS["leak"]["level"])
            ramp = min(30, (pb - pa) // 4)
            env = np.full(pb - pa, 1.0)
            env[:ramp] = np.linspace(0, 1, ramp)
            env[-ramp:] = np.linspace(1, 0, ramp)
            pld["Leak"][pa:pb] += env * (level - pld["Leak"][pa:pb])
            channels = ["Leak"]
        elif kind == "mask_off":
            brp["Flow"][a:b] = rng.normal(0, 0.01, b - a)
            brp["Press"][a:b] = rng.normal(0.1, 0.03, b - a)
            for name, scale in (("RespRate", 0.3), ("TidVol", 0.01), ("MinVent", 0.1),
                                ("MaskPress", 0.03)):
                pld[name][pa:pb] = np.abs(rng.normal(0, scale, pb - pa))
            channels = ["Flow", "Press", "RespRate", "TidVol", "MinVent", "MaskPress"]
        elif kind == "flatline":
            name = str(rng.choice(["Flow", "Press", *pld]))
            if name in brp:
                brp[name][a:b] = brp[name][a - 1]
            else:
                pld[name][pa:pb] = pld[name][pa - 1]
            channels = [name]
        else:  # spike
            level = rng.uniform(*FAULT_KINDS["spike"]["level"])
            brp["Press"][a:b] += level
            pld["MaskPress"][at // 2: pb] = _block_mean(brp["Press"], k)[at // 2: pb]
            channels = ["Press", "MaskPress"]
        truth.append({"night": night, "start": start + pd.Timedelta(seconds=at),
                      "end": start + pd.Timedelta(seconds=at + dur), "kind": kind,
                      "channels": ",".join(channels), "fault": True})
    for at, dur, kind in events:
        truth.append({"night": night, "start": start + pd.Timedelta(seconds=at),
                      "end": start + pd.Timedelta(seconds=at + dur), "kind": kind,
                      "channels": "Flow", "fault": False})
    notes = pd.DataFrame([{"onset": float(at), "duration": float(dur),
                           "text": "Obstructive apnea" if kind == "apnea" else "Hypopnea"}
                          for at, dur, kind in sorted(events)],
                         columns=["onset", "duration", "text"])
    return brp, pld, notes, truth


def make_cpap_nights(out_dir: str | os.PathLike, n_nights: int = 30, start: str = "2020-11-15",
                     random_state: int = 0, *, hours: tuple[float, float] = (4.0, 8.0),
                     faults_per_night: int = 3, progress: bool = True) -> pd.DataFrame:
    """Write ``n_nights`` CPAP nights as ResMed EDF files and return their ground truth.

    Each night ``YYYYMMDD_HHMMSS`` (starting between 21:00 and 23:59) gets:

    * ``<night>_BRP.edf``: ``Flow`` (L/s) and ``Press`` (cmH2O) at 25 Hz;
    * ``<night>_PLD.edf``: ``Leak`` (L/min), ``RespRate`` (bpm), ``TidVol`` (L),
      ``MinVent`` (L/min) and ``MaskPress`` (cmH2O) at 0.5 Hz;
    * ``<night>_EVE.edf``: EDF+ annotations of the scored apneas and hypopneas.

    Breathing is a quasi-periodic flow whose rate drifts between 10 and 20
    breaths a minute and whose depth drifts too. Each hour holds 3 to 10
    scored apneas (flow under 8%) or hypopneas (35-60%) of 10 to 60 s:
    physiology, not faults. Each night also holds ``faults_per_night``
    injected faults in disjoint slots, of different kinds (drawn at random)
    up to four a night:

    * ``leak``: leak rises to 30-60 L/min for 2-20 min;
    * ``mask_off``: flow and pressure (and the volumes, rate and mask
      pressure of the PLD file) fall near 0 for 1-10 min;
    * ``flatline``: one channel stuck at its last value for 2-30 min;
    * ``spike``: pressure +5 to +10 cmH2O for 1-5 s.

    Parameters
    ----------
    out_dir : str or path-like
        Directory to write into (created). ``truth.csv`` is written there too.
    n_nights : int, default 30
        Nights, one a day from ``start``.
    start : str, default "2020-11-15"
        Date of the first night.
    random_state : int, default 0
        Seed; the same seed writes the same files.
    hours : (float, float), default (4, 8)
        Range of a night's length in hours (a small range keeps tests fast).
    faults_per_night : int, default 3
    progress : bool, default True
        Show a progress bar (tqdm, on stderr; a widget in a notebook).

    Returns
    -------
    DataFrame
        One row per injected fault and scored event: ``night``, ``start``,
        ``end`` (timestamps), ``kind`` (a fault kind, ``apnea`` or
        ``hypopnea``), ``channels`` (comma-separated) and ``fault`` (bool).

    Raises
    ------
    ValueError
        On a bad ``n_nights``, ``hours`` or ``faults_per_night``.

    Examples
    --------
    >>> import tempfile
    >>> truth = make_cpap_nights(tempfile.mkdtemp(), n_nights=1, hours=(1, 1))
    >>> sorted(truth.columns)
    ['channels', 'end', 'fault', 'kind', 'night', 'start']
    >>> int(truth["fault"].sum())
    3
    """
    from tqdm.auto import tqdm

    from lab.datasets.edf import write_edf

    n_nights = _check_int(n_nights, "n_nights", minimum=1)
    faults_per_night = _check_int(faults_per_night, "faults_per_night", minimum=0)
    lo_h, hi_h = (float(h) for h in hours)
    if not 0.5 <= lo_h <= hi_h <= 24:
        raise ValueError(f"hours={hours!r}: expected (low, high) with 0.5 <= low <= high <= 24")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(random_state)
    first = pd.Timestamp(start).normalize()
    truth: list[dict] = []
    for day in tqdm(range(n_nights), desc="writing nights", unit="night", disable=not progress):
        t0 = first + pd.Timedelta(days=day, hours=21) + pd.Timedelta(
            seconds=int(rng.integers(0, 3 * 3600)))
        night = t0.strftime("%Y%m%d_%H%M%S")
        seconds = int(rng.uniform(lo_h, hi_h) * 60) * 60  # whole minutes: whole EDF records
        brp, pld, notes, rows = _one_night(rng, night, t0, seconds, faults_per_night)
        truth.extend(rows)
        for kind, signals, rate in (("BRP", brp, BRP_RATE), ("PLD", pld, PLD_RATE)):
            spec = CHANNELS[kind]
            write_edf(out / f"{night}_{kind}.edf", signals, dict.fromkeys(signals, rate), t0,
                      units={c: spec[c][0] for c in signals},
                      ranges={c: spec[c][1] for c in signals})
        write_edf(out / f"{night}_EVE.edf", {}, {}, t0, annotations=notes)
    table = pd.DataFrame(truth, columns=["night", "start", "end", "kind", "channels", "fault"])
    table = table.sort_values(["night", "start"], ignore_index=True)
    tmp = out / ".truth.csv.tmp"
    table.to_csv(tmp, index=False)
    os.replace(tmp, out / "truth.csv")
    return table
