"""Slow, obviously correct reference versions of the lab's kernels.

Tests compare the fast implementations with these on random and awkward
inputs. Clarity beats speed here: plain loops, no vectorisation tricks.
"""

from __future__ import annotations

import numpy as np

# ---- lab.metrics (TCPDBench metrics.py transcribed with sets; Tatbul et al. 2018 by loops)


def tcpd_true_positives(T, X, margin=5):
    """TCPDBench ``true_positives``, iterating T in sorted order."""
    X = set(X)
    TP = set()
    for tau in sorted(T):
        close = sorted((abs(tau - x), x) for x in X if abs(tau - x) <= margin)
        if not close:
            continue
        _, xstar = close[0]
        TP.add(tau)
        X.remove(xstar)
    return TP


def tcpd_f_measure(annotations, predictions, margin=5):
    Tks = [set(v) | {0} for v in annotations.values()]
    X = set(predictions) | {0}
    Tstar = set().union(*Tks)
    P = len(tcpd_true_positives(Tstar, X, margin)) / len(X)
    R = sum(len(tcpd_true_positives(Tk, X, margin)) / len(Tk) for Tk in Tks) / len(Tks)
    return 0.0 if P + R == 0 else 2 * P * R / (P + R)


def tcpd_partition(locations, n_obs):
    T, t = [], set()
    for i in range(n_obs):
        if i in locations and t:
            T.append(t)
            t = set()
        t.add(i)
    T.append(t)
    return T


def tcpd_covering(annotations, predictions, n_obs):
    pX = tcpd_partition(set(predictions), n_obs)
    Cs = []
    for cps in annotations.values():
        S = tcpd_partition(set(cps), n_obs)
        C = sum(len(R) * max(len(R & Rp) / len(R | Rp) for Rp in pX) for R in S)
        Cs.append(C / n_obs)
    return sum(Cs) / len(Cs)


def runs_of_ones(y):
    ranges, start = [], None
    for i, v in enumerate(list(y) + [0]):
        if v and start is None:
            start = i
        elif not v and start is not None:
            ranges.append((start, i))
            start = None
    return ranges


def tatbul_precision_recall(y_true, y_pred, alpha=0.0, bias="flat", cardinality="one"):
    """Range precision/recall of Tatbul et al. (2018), point sets and loops."""
    def delta(i, n):  # i is 1-based
        return {"flat": 1.0, "front": n - i + 1.0, "back": float(i),
                "middle": float(i) if i <= n / 2 else n - i + 1.0}[bias]

    def omega(rng, overlap):
        n = rng[1] - rng[0]
        num = sum(delta(i - rng[0] + 1, n) for i in range(rng[0], rng[1]) if i in overlap)
        den = sum(delta(i, n) for i in range(1, n + 1))
        return num / den

    def reward(R, Ps, a):
        pts = set(range(*R))
        hits = [P for P in Ps if pts & set(range(*P))]
        existence = 1.0 if hits else 0.0
        gamma = 1.0 if cardinality == "one" or len(hits) <= 1 else 1.0 / len(hits)
        overlap = gamma * sum(omega(R, pts & set(range(*P))) for P in hits)
        return a * existence + (1 - a) * overlap

    real, pred = runs_of_ones(y_true), runs_of_ones(y_pred)
    recall = sum(reward(R, pred, alpha) for R in real) / len(real) if real else 0.0
    precision = sum(reward(P, real, 0.0) for P in pred) / len(pred) if pred else 0.0
    return precision, recall


def point_adjust(y_true, y_pred):
    out = list(y_pred)
    for s, e in runs_of_ones(y_true):
        if any(y_pred[s:e]):
            for i in range(s, e):
                out[i] = 1
    return out


def convert_to_column(x, window_size, stride):
    """Behaviour-extraction windows, one row per window, time-major."""
    rows = []
    t = 0
    while t + window_size <= len(x):
        row = []
        for k in range(window_size):
            row.extend(x[t + k])
        rows.append(row)
        t += stride
    return np.array(rows)


def calc_batches(train_min, train_max, train_every, n):
    batches = {0: {"start": 0, "end": train_min}}
    b = 1
    for r in range(1, n + 1):
        if r % train_every == 0 and train_min < r <= n:
            batches[b] = {"start": max(0, r - train_max), "end": r}
            b += 1
    return batches


# ---- lab.signal_utility / lab.tensor_utility (one window, one column at a time)


def ks_2samp_columns(a, b, method="auto", alternative="two-sided"):
    """scipy.stats.ks_2samp on each column, NaN omitted, NaN for empty columns."""
    import warnings

    from scipy import stats

    stat = np.full(a.shape[1], np.nan)
    pval = np.full(a.shape[1], np.nan)
    for j in range(a.shape[1]):
        x, y = a[:, j][~np.isnan(a[:, j])], b[:, j][~np.isnan(b[:, j])]
        if len(x) == 0 or len(y) == 0:
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            res = stats.ks_2samp(x, y, method=method, alternative=alternative)
        stat[j], pval[j] = res.statistic, res.pvalue
    return stat, pval


def rolling(X, n, func, min_periods=1):
    """Trailing rolling aggregate, one row at a time, NaN skipped."""
    X = np.asarray(X, dtype=float)
    out = np.full(X.shape, np.nan)
    for t in range(X.shape[0]):
        for j in range(X.shape[1]):
            window = X[max(0, t - n + 1): t + 1, j]
            window = window[~np.isnan(window)]
            if len(window) >= max(min_periods, 1):
                out[t, j] = {"mean": np.mean, "min": np.min, "max": np.max,
                             "sum": np.sum, "median": np.median}[func](window)
    return out


def sliding_windows(X, window, step):
    return np.array([X[s: s + window] for s in range(0, len(X) - window + 1, step)])


def signature_matrices(X, windows=(10, 30, 60), step=10):
    """MSCRED signature matrices by a pairwise loop of np.inner (Zhang et al. 2019)."""
    X = np.asarray(X, dtype=float)
    ends = list(range(max(windows), X.shape[0] + 1, step))
    n = X.shape[1]
    M = np.zeros((len(ends), len(windows), n, n))
    for k, e in enumerate(ends):
        for s, w in enumerate(windows):
            for i in range(n):
                for j in range(n):
                    M[k, s, i, j] = np.inner(X[e - w: e, i], X[e - w: e, j]) / w
    return M, np.array(ends)


def signature_matrices_matmul(X, windows=(10, 30, 60), step=10):
    """The same, one ``seg.T @ seg`` per window and end."""
    ends = np.arange(max(windows), X.shape[0] + 1, step)
    M = np.empty((len(ends), len(windows), X.shape[1], X.shape[1]))
    for k, e in enumerate(ends):
        for s, w in enumerate(windows):
            seg = X[e - w: e]
            M[k, s] = seg.T @ seg / w
    return M, ends


def counter_increments(values):
    """Per-row increments of cumulative counters; a decrease is a reset to 0.

    The first row and any row next to a NaN are NaN.
    """
    values = np.asarray(values, dtype=float)
    out = np.full(values.shape, np.nan)
    for j in range(values.shape[1]):
        for t in range(1, values.shape[0]):
            prev, cur = values[t - 1, j], values[t, j]
            if np.isnan(prev) or np.isnan(cur):
                continue
            out[t, j] = cur - prev if cur >= prev else cur
    return out


def correlation_matrices(X, windows=(10, 30, 60), step=10, diff=False, rescale=False):
    """np.corrcoef per window; a constant series correlates 0 with everything.

    ``rescale``: each window's series is first divided by its largest absolute value,
    which changes no correlation but avoids np.corrcoef's own underflow (scale 1e-200)
    and overflow (scale 1e155) of the squares."""
    X = np.asarray(X, dtype=float)
    if diff:
        X = X[1:] - X[:-1]
    ends = list(range(max(windows), X.shape[0] + 1, step))
    n = X.shape[1]
    C = np.zeros((len(ends), len(windows), n, n))
    for k, e in enumerate(ends):
        for s, w in enumerate(windows):
            seg = X[e - w: e].copy()
            for i in range(n):
                if rescale and seg[:, i].max() != seg[:, i].min():
                    seg[:, i] = seg[:, i] / np.abs(seg[:, i]).max()
            for i in range(n):
                for j in range(n):
                    if seg[:, i].max() == seg[:, i].min() or seg[:, j].max() == seg[:, j].min():
                        continue
                    C[k, s, i, j] = 1.0 if i == j else np.corrcoef(seg[:, i], seg[:, j])[0, 1]
    return C, np.array(ends) + (1 if diff else 0)


def step_attention(H, chi=5.0):
    """MSCRED attention (Zhang et al. 2019, eq. 4) with explicit loops over batch and steps."""
    H = np.asarray(H, dtype=float)
    out = np.zeros((H.shape[0],) + H.shape[2:])
    for b in range(H.shape[0]):
        last = H[b, -1]
        logits = [float(np.sum(H[b, k] * last)) / chi for k in range(H.shape[1])]
        top = max(logits)
        weights = [np.exp(v - top) for v in logits]
        total = sum(weights)
        for k in range(H.shape[1]):
            out[b] += weights[k] / total * H[b, k]
    return out


def event_metrics(alarm_labels, alarm_on, spans, tolerance=0, grace=None):
    """Event-level detection with plain loops: (detected per event, false-alarm episodes).

    An episode is a run of consecutive alarms; it is false when no alarm of it is in an event
    extended by ``grace``.
    """
    grace = tolerance if grace is None else grace

    def inside(t):
        return any(start <= t <= end + grace for start, end in spans)

    detected = [any(on and start <= t <= end + tolerance for t, on in zip(alarm_labels, alarm_on, strict=False))
                for start, end in spans]
    episodes, run = 0, []
    for t, on in list(zip(alarm_labels, alarm_on, strict=False)) + [(None, False)]:
        if on:
            run.append(t)
        elif run:
            episodes += not any(inside(u) for u in run)
            run = []
    return detected, episodes


def top_episodes(values, k, min_gap):
    """Greedy non-maximum suppression: repeatedly take the best position far from all taken."""
    taken = []
    candidates = list(range(len(values)))
    while candidates and len(taken) < k:
        best = candidates[0]
        for i in candidates:
            if values[i] > values[best]:
                best = i
        taken.append(best)
        candidates = [i for i in candidates if abs(i - best) >= min_gap]
    return taken


def spectral_residual(x, mag_window=3, score_window=40, extend_num=5, look_ahead=5):
    """Saliency map and score of Ren et al. (2019), one series, plain loops.

    Follows the steps of Microsoft's reference implementation
    (msanomalydetector/spectral_residual.py) one element at a time.
    """
    eps = 1e-8

    def trailing_mean(v, n):
        n = min(n, len(v))
        return np.array([np.mean(v[max(0, i - n + 1): i + 1]) for i in range(len(v))])

    x = [float(v) for v in x]
    window = x[-look_ahead - 2:-1]
    m = len(window)
    nxt = window[1] + sum((window[-1] - window[i]) / (m - 1 - i) for i in range(m - 1))
    extended = np.array(x + [nxt] * extend_num)
    spectrum = np.fft.fft(extended)
    amp = np.abs(spectrum)
    log_amp = np.array([0.0 if a <= eps else np.log(a) for a in amp])
    residual = np.exp(log_amp - trailing_mean(log_amp, mag_window))
    rebuilt = np.array([0j if amp[k] <= eps else spectrum[k] / amp[k] * residual[k]
                        for k in range(len(amp))])
    saliency = np.abs(np.fft.ifft(rebuilt))[: len(x)]
    local = np.maximum(trailing_mean(saliency, score_window), eps)
    score = np.clip(np.abs(saliency - local) / local / 10.0, 0.0, 1.0)
    return saliency, score


# ---- lab.models.clustering


def mean_abs_pairwise_corr(X):
    """Mean |Pearson r| over the distinct pairs of columns of X, pair by pair."""
    m = X.shape[1]
    total, pairs = 0.0, 0
    for i in range(m):
        for j in range(i + 1, m):
            total += abs(np.corrcoef(X[:, i], X[:, j])[0, 1])
            pairs += 1
    return total / pairs


def shape_based_distance(x, y):
    """k-Shape's SBD, 1 - max over shifts of the normalised cross-correlation."""
    cc = np.correlate(x, y, mode="full")
    return 1.0 - cc.max() / (np.linalg.norm(x) * np.linalg.norm(y))


# ---- lab.models.betsi


def naive_normalized_distance(a, b):
    """Lee et al.'s ||a - b|| / sqrt(||a|| ||b||); arithmetic mean of the norms when one is 0."""
    na = np.sqrt(sum(x * x for x in a))
    nb = np.sqrt(sum(x * x for x in b))
    diff = np.sqrt(sum((x - y) ** 2 for x, y in zip(a, b, strict=False)))
    if na > 0 and nb > 0:
        return diff / np.sqrt(na * nb)
    if na == 0 and nb == 0:
        return 0.0
    return diff / ((na + nb) / 2)


def naive_peak_masses(d):
    """Runs strictly above the median: first position of each run's maximum, area above the median."""
    d = list(d)
    if not d:
        return [], []
    ordered = sorted(d)
    half = len(d) // 2
    median = ordered[half] if len(d) % 2 else (ordered[half - 1] + ordered[half]) / 2
    peaks, masses = [], []
    i = 0
    while i < len(d):
        if d[i] > median:
            j = i
            best = i
            mass = 0.0
            while j < len(d) and d[j] > median:
                if d[j] > d[best]:
                    best = j
                mass += d[j] - median
                j += 1
            peaks.append(best)
            masses.append(mass)
            i = j
        else:
            i += 1
    return peaks, masses


def naive_set_distance(codes, lag, span):
    """Half the energy distance between codes[i-span+1..i] and codes[i+lag..i+lag+span-1], per i."""
    out = []
    for i in range(span - 1, len(codes) - lag - span + 1):
        left = [codes[i - a] for a in range(span)]
        right = [codes[i + lag + b] for b in range(span)]

        def mean_dist(xs, ys):
            return sum(np.sqrt(sum((p - q) ** 2 for p, q in zip(x, y, strict=True)))
                       for x in xs for y in ys) / (len(xs) * len(ys))

        out.append(mean_dist(left, right)
                   - (mean_dist(left, left) + mean_dist(right, right)) / 2)
    return out


def vus_tsbad(y_true, score, window, n_thresholds=250):
    """VUS-ROC and VUS-PR by the definition of TSB-AD's RangeAUC_volume_opt, one
    width and one threshold at a time (Paparrizos et al., VLDB 2022)."""
    import math

    y = np.asarray(y_true).astype(int)
    s = np.asarray(score, dtype=float)
    n = len(y)
    ranges = [(a, b - 1) for a, b in runs_of_ones(y)]  # inclusive ends
    desc = sorted(s, reverse=True)
    thresholds = [desc[int(k)] for k in np.linspace(0, n - 1, n_thresholds)]
    n_pos = y.sum()
    rocs, prs = [], []
    for w in range(window + 1):
        h = w // 2
        soft = y.astype(float)
        for a, b in ranges:
            for d in range(1, h + 1):
                if b + d < n:
                    soft[b + d] += math.sqrt(1 - d / w)
                if a - d >= 0:
                    soft[a - d] += math.sqrt(1 - d / w)
        soft = np.minimum(soft, 1.0)
        segments = []  # widened ranges, merged unless one ends strictly before the next
        for a, b in ranges:
            if segments and not (segments[-1][2] + h < a - h):
                segments[-1][1] = min(b + h, n - 1)
                segments[-1][2] = b
            else:
                segments.append([max(a - h, 0), min(b + h, n - 1), b])
        tpr, fpr, precision = [0.0], [0.0], [1.0]
        for thr in thresholds:
            pred = (s >= thr).astype(float)
            lab = soft.copy()
            found = 0
            for lo, hi, _ in segments:
                lab[lo:hi + 1] = soft[lo:hi + 1] * pred[lo:hi + 1]
                found += int(pred[lo:hi + 1].any())
            for a, b in ranges:
                lab[a:b + 1] = 1.0
            tp = float(np.dot(lab, pred))
            p_new = (n_pos + lab.sum()) / 2
            tpr.append(min(tp / p_new, 1.0) * found / len(segments))
            fpr.append((pred.sum() - tp) / (n - p_new))
            precision.append(tp / pred.sum())
        tpr.append(1.0)
        fpr.append(1.0)
        rocs.append(sum((fpr[k + 1] - fpr[k]) * (tpr[k + 1] + tpr[k]) / 2
                        for k in range(len(fpr) - 1)))
        prs.append(sum((tpr[k] - tpr[k - 1]) * precision[k] for k in range(1, len(precision))))
    return sum(rocs) / len(rocs), sum(prs) / len(prs)


def range_f1(y_true, y_pred, alpha=0.0, cardinality="one"):
    p, r = tatbul_precision_recall(y_true, y_pred, alpha=alpha, bias="flat",
                                   cardinality=cardinality)
    return 0.0 if p + r == 0 else 2 * p * r / (p + r)


def nab_raw_score(detected, windows, cost, probation=0.15):
    """NAB's raw score of one series, walking its rows as NAB's Sweeper does.

    ``windows`` are inclusive ``(first_row, last_row)`` pairs, disjoint.
    """
    import math

    def sigma(x):
        return -1.0 if x >= 3.0 else 2.0 / (1.0 + math.exp(5.0 * x)) - 1.0

    n = len(detected)
    first = min(math.floor(probation * n), probation * 5000)
    window_of = {i: k for k, (a, b) in enumerate(windows) for i in range(a, b + 1)}
    best, fp, prev = {}, 0.0, None
    for i in range(n):
        k = window_of.get(i)
        if k is not None:
            a, b = windows[k]
            if i >= first:
                best.setdefault(k, -cost["fnWeight"])
                if detected[i]:
                    tp = sigma(-(b - i + 1) / (b - a + 1)) * cost["tpWeight"] / sigma(-1.0)
                    best[k] = max(best[k], tp)
            if i == b:
                prev = (a, b)
        elif detected[i] and i >= first:
            if prev is None:
                x = 3.0
            elif prev[0] == prev[1]:
                x = math.inf  # NAB divides by zero here; lab counts the full cost
            else:
                x = (i - prev[1]) / (prev[1] - prev[0])
            fp += sigma(x) * cost["fpWeight"]
    return sum(best.values()) + fp


def nab_score(corpus, cost):
    """Normalised NAB score of ``[(detected, windows), ...]`` (rows, as above)."""
    raw = sum(nab_raw_score(d, w, cost) for d, w in corpus)
    null = sum(nab_raw_score([False] * len(d), w, cost) for d, w in corpus)
    perfect = cost["tpWeight"] * sum(len(w) for _, w in corpus)
    return 100 * (raw - null) / (perfect - null)


def ucr_hit(y_true, score, tolerance=100):
    rows = [i for i, v in enumerate(y_true) if v]
    best = 0
    for i, v in enumerate(score):
        if v > score[best]:
            best = i
    return rows[0] - tolerance <= best <= rows[-1] + tolerance


# ---- lab.models.classic (standardise with training statistics, windows, k-NN distance)


def naive_standardise(train, X):
    """Each column of X minus the training column's mean, over its std (1 where the std is 0)."""
    train = np.asarray(train, dtype=float).reshape(len(train), -1)
    X = np.asarray(X, dtype=float).reshape(len(X), -1)
    out = np.empty_like(X)
    for j in range(X.shape[1]):
        mean = sum(train[:, j]) / len(train)
        std = np.sqrt(sum((v - mean) ** 2 for v in train[:, j]) / len(train))
        for i in range(len(X)):
            out[i, j] = (X[i, j] - mean) / (std if std > 0 else 1.0)
    return out


def naive_windows(X, window):
    """Window ending at each row e >= window - 1, flattened time first, then column."""
    X = np.asarray(X, dtype=float).reshape(len(X), -1)
    rows = []
    for end in range(window - 1, len(X)):
        rows.append([X[t, j] for t in range(end - window + 1, end + 1)
                     for j in range(X.shape[1])])
    return np.array(rows)


def naive_kth_distance(reference, queries, k, leave_out=False):
    """Euclidean distance from each query to its k-th nearest reference row.

    With ``leave_out``, queries are the reference rows and each skips itself.
    """
    out = []
    for i, q in enumerate(queries):
        dists = sorted(
            np.sqrt(sum((a - b) ** 2 for a, b in zip(q, r, strict=True)))
            for j, r in enumerate(reference) if not (leave_out and i == j))
        out.append(dists[k - 1])
    return np.array(out)


def naive_place(n, window, window_scores):
    """Row scores: the window ending at a row gives it its score; earlier rows take the first."""
    return np.array([window_scores[max(i - (window - 1), 0)] for i in range(n)])


# ---- lab.models signal detectors and lab.spot (one window, one value at a time)


def znorm_distance(a, b):
    """z-normalised Euclidean distance of two windows; a constant window is at 0 from a
    constant one and sqrt(m) from any other (stumpy's convention)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    sa, sb = a.std(), b.std()
    if sa == 0 and sb == 0:
        return 0.0
    if sa == 0 or sb == 0:
        return float(np.sqrt(len(a)))
    return float(np.sqrt(np.sum(((a - a.mean()) / sa - (b - b.mean()) / sb) ** 2)))


def mp_ab_join(x, ref, m):
    """Distance of every window of x to its nearest window of ref (windows with NaN skipped)."""
    out = []
    for i in range(len(x) - m + 1):
        best = np.inf
        for k in range(len(ref) - m + 1):
            if np.isnan(ref[k: k + m]).any():
                continue
            best = min(best, znorm_distance(x[i: i + m], ref[k: k + m]))
        out.append(best)
    return np.array(out)


def mp_self_join(x, m):
    """Nearest-neighbour distance of every window of x outside |i - k| <= ceil(m / 4)."""
    excl = int(np.ceil(m / 4))
    out = []
    for i in range(len(x) - m + 1):
        best = np.inf
        for k in range(len(x) - m + 1):
            if abs(i - k) <= excl or np.isnan(x[k: k + m]).any() or np.isnan(x[i: i + m]).any():
                continue
            best = min(best, znorm_distance(x[i: i + m], x[k: k + m]))
        out.append(best)
    return np.array(out)


def ks_window_scores(X, window, baseline, stride=1):
    """KSWindowDetector's score by scipy.stats.ks_2samp, one row and one column at a time."""
    from scipy import stats

    X = np.asarray(X, dtype=float)
    n = len(X)
    first = window + baseline - 1
    scored = list(range(first, n, stride))
    if scored[-1] != n - 1:
        scored.append(n - 1)
    out = np.empty(n)
    last = None
    for t in range(first, n):
        if t in scored:
            focus = X[t - window + 1: t + 1]
            base = X[t - window - baseline + 1: t - window + 1]
            # "asymp": the statistic as computed, not rounded to the exact method's lattice
            last = max(stats.ks_2samp(base[:, j], focus[:, j], method="asymp").statistic
                       for j in range(X.shape[1]))
        out[t] = last
    out[:first] = out[first]
    return out


def dspot_flags(calibration, stream, depth, q, level):
    """DSPOT (Siffer et al. 2017, algorithm 3) with the moving average recomputed from a
    plain list at every step; flagged values stay out of the list."""
    from lab.spot import Spot

    calibration = [float(v) for v in calibration]
    residuals = [calibration[i] - sum(calibration[i - depth: i]) / depth
                 for i in range(depth, len(calibration))]
    spot = Spot(q, level).fit(np.array(residuals))
    window = calibration[-depth:]
    flags = []
    for v in stream:
        flag = spot.step(float(v) - sum(window) / depth)
        if not flag:
            window = window[1:] + [float(v)]
        flags.append(flag)
    return np.array(flags)


# ---- lab.models.bocpd and lab.models.changepoint (change points)


def bocpd_map(x, lam, mu0, kappa0, alpha0, beta0, prune):
    """Adams and MacKay (2007) with a loop over run lengths and over columns.

    Returns the log predictive density of every row and the most probable run
    length after it, from a dict {run length: (probability, stats per column)}.
    """
    import math

    x = np.asarray(x, dtype=float)
    hazard = 1.0 / lam
    runs = {0: (1.0, [(mu0, kappa0, alpha0, beta0)] * x.shape[1])}
    log_ev, map_rl = [], []
    for row in x:
        logpi = {}
        for r, (_, stats) in runs.items():
            total = 0.0
            for v, (mu, kappa, alpha, beta) in zip(row, stats, strict=True):
                nu = 2 * alpha
                s2 = beta * (kappa + 1) / (alpha * kappa)
                total += (math.lgamma((nu + 1) / 2) - math.lgamma(nu / 2)
                          - 0.5 * math.log(nu * math.pi * s2)
                          - (nu + 1) / 2 * math.log(1 + (v - mu) ** 2 / (nu * s2)))
            logpi[r] = total
        top = max(logpi.values())
        weight = {r: runs[r][0] * math.exp(logpi[r] - top) for r in runs}
        evidence = sum(weight.values())
        log_ev.append(top + math.log(evidence))
        grown = {}
        for r, (_, stats) in runs.items():
            new_stats = []
            for v, (mu, kappa, alpha, beta) in zip(row, stats, strict=True):
                new_stats.append(((kappa * mu + v) / (kappa + 1), kappa + 1, alpha + 0.5,
                                  beta + kappa * (v - mu) ** 2 / (2 * (kappa + 1))))
            grown[r + 1] = (weight[r] * (1 - hazard) / evidence, new_stats)
        grown = {r: v for r, v in grown.items() if v[0] >= prune}
        grown[0] = (hazard, [(mu0, kappa0, alpha0, beta0)] * x.shape[1])
        runs = grown
        map_rl.append(max(runs, key=lambda r: (runs[r][0], r)))  # ties: the longer run
    return np.array(log_ev), np.array(map_rl)


def mbic_optimal_partition(x, pen, minseglen=1):
    """Optimal partitioning (Jackson et al. 2005) of a change in mean with changepoint's MBIC
    cost, sum over segments of (sum of squares + log(length)) + pen per change; no pruning."""
    import math

    x = [float(v) for v in x]
    n = len(x)

    def cost(a, b):
        seg = x[a:b]
        m = sum(seg) / len(seg)
        return sum((v - m) ** 2 for v in seg) + math.log(len(seg))

    best = [-pen] + [math.inf] * n
    last = [0] * (n + 1)
    for t in range(minseglen, n + 1):
        for s in [0] + list(range(minseglen, t - minseglen + 1)):
            value = best[s] + cost(s, t) + pen
            if value < best[t]:
                best[t], last[t] = value, s
    cps, t = [], n
    while last[t] > 0:
        t = last[t]
        cps.append(t)
    return sorted(cps)
def make_chunks_loop(values, labels, T, step, rule, groups):
    """Chunks cut one by one: walk each group's rows, emit every full chunk of T rows."""
    values = np.asarray(values, dtype=np.float64)
    if values.ndim == 1:
        values = values[:, None]
    labels = [float(v) for v in labels]
    groups = [0] * len(values) if groups is None else list(groups)
    X, y, starts = [], [], []
    start = 0
    while start < len(values):
        end = start
        while end < len(values) and groups[end] == groups[start]:
            end += 1
        pos = start
        while pos + T <= end:
            share = sum(labels[pos: pos + T]) / T
            X.append(values[pos: pos + T])
            y.append(int(share > 0) if rule == "any" else int(share >= rule))
            starts.append(pos)
            pos += step
        start = end
    return np.array(X).reshape(len(X), T, values.shape[1]), np.array(y, dtype=int), starts
def robust_z_entries(X, median, scale, local_scale, window, flat_rows, z_threshold):
    """RobustZDetector's per-entry score, one entry at a time: global z, z against the median
    of the trailing ``window`` values, and the flat-line score of the run it sits in."""
    X = np.asarray(X, dtype=float)
    n, d = X.shape
    out = np.zeros((n, d))
    for j in range(d):
        for i in range(n):
            x = X[i, j]
            z = abs(x - median[j]) / scale[j]
            local = abs(x - np.median(X[max(0, i - window + 1): i + 1, j])) / local_scale[j]
            a = i
            while a > 0 and X[a - 1, j] == x:
                a -= 1
            b = i
            while b < n - 1 and X[b + 1, j] == x:
                b += 1
            run = b - a + 1
            flat = z_threshold * (1 + run / flat_rows) if run >= flat_rows else 0.0
            out[i, j] = max(z, local, flat)
    return out


def minmax_buckets(x, y, n_out):
    """Min-max display resampling with one loop over ``n_out // 2`` buckets of
    ``np.linspace(0, n, buckets + 1)`` edges: each bucket's first minimum and first
    maximum, in time order."""
    n = len(y)
    if n <= n_out:
        return np.asarray(x), np.asarray(y)
    buckets = n_out // 2
    edges = np.linspace(0, n, buckets + 1).astype(int)
    keep = []
    for a, b in zip(edges[:-1], edges[1:], strict=True):
        seg = list(y[a:b])
        lo = a + seg.index(min(seg))
        hi = a + seg.index(max(seg))
        keep.extend(sorted([lo, hi]))
    keep = np.array(keep)
    return np.asarray(x)[keep], np.asarray(y)[keep]


def complete_block(rows, columns, min_coverage):
    """Loops over a list of row lists (None for a hole): the columns with a value on at
    least ``min_coverage`` of the rows, then the rows with a value in every kept column;
    (kept row numbers, kept columns, left-out columns)."""
    kept, left_out = [], []
    for j, name in enumerate(columns):
        have = sum(1 for row in rows if row[j] is not None)
        if rows and have / len(rows) >= min_coverage:
            kept.append(j)
        else:
            left_out.append(name)
    keep_rows = [i for i, row in enumerate(rows) if all(row[j] is not None for j in kept)]
    return keep_rows, [columns[j] for j in kept], left_out
