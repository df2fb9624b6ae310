"""What a prediction reports besides the sentiment: the per-modality signals shown to users
and the per-stage latencies (see `realtime.pipeline` for their definitions)."""

from __future__ import annotations

import numpy as np

from realtime.types import FeatureLayout, Signals, Window

NAN = float("nan")


def signals(audio: np.ndarray, video: np.ndarray, layout: FeatureLayout,
            face_present: bool) -> Signals:
    """audio: recent acoustic rows; video: recent face rows (newest last).
    pitch: median F0 of the voiced rows (F0 > 0); energy: mean dB; smile/brow/jaw: the
    newest face row, when it has a face."""
    pitch_hz = energy_db = NAN
    if len(audio):
        energy_db = float(np.mean(audio[:, layout.energy_db_index]))
        f0 = audio[:, layout.pitch_hz_index]
        if np.any(f0 > 0):
            pitch_hz = float(np.median(f0[f0 > 0]))
    smile = brow = jaw = NAN
    if len(video) and video[-1, layout.face_present_index] > 0.5:
        row = video[-1]
        smile = float(row[layout.smile_index])
        if layout.smile_right_index is not None:
            smile = 0.5 * (smile + float(row[layout.smile_right_index]))
        brow, jaw = float(row[layout.brow_index]), float(row[layout.jaw_index])
    return Signals(pitch_hz, energy_db, smile, brow, jaw, face_present)


def latencies(window: Window, newest: dict[str, tuple[float, float]], built_s: float,
              emitted_s: float) -> dict[str, float]:
    """newest: modality -> (captured_at_s, computed_at_s) of its newest feature batch
    (nan when none yet). Returns milliseconds per stage."""
    ms: dict[str, float] = {}
    freshest, freshest_t = None, -np.inf
    for modality, (captured_s, computed_s) in newest.items():
        if np.isnan(captured_s):
            continue
        ms[f"{modality}_capture_to_features"] = (computed_s - captured_s) * 1000.0
        ms[f"{modality}_features_to_window"] = (built_s - computed_s) * 1000.0
        ms[f"{modality}_total"] = (emitted_s - captured_s) * 1000.0
        if captured_s > freshest_t:
            freshest, freshest_t = modality, captured_s
    if freshest is not None:
        ms["capture_to_features"] = ms[f"{freshest}_capture_to_features"]
        ms["features_to_window"] = ms[f"{freshest}_features_to_window"]
    ms["window_to_prediction"] = (emitted_s - built_s) * 1000.0
    ms["total"] = (emitted_s - window.newest_input_t_s) * 1000.0
    return ms
