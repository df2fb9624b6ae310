"""The dashboard's look: a dark theme with system fonts only (nothing is fetched from the
internet), the panels' CSS, and a small page script that keeps the page dark and keeps the
recording's player in step with the pipeline (it reads ``data-media-t`` from the status)."""

from __future__ import annotations

BG = "#0b1020"
CARD = "#111a2e"
BORDER = "#1f2a44"
TEXT = "#e5e7eb"
MUTED = "#8b95a9"
ACCENT = "#38bdf8"


def theme():
    import gradio as gr

    fonts = ["Inter", "ui-sans-serif", "system-ui", "Segoe UI", "Roboto", "sans-serif"]
    mono = ["ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "monospace"]
    values = {
        "body_background_fill": BG,
        "background_fill_primary": CARD,
        "background_fill_secondary": BG,
        "block_background_fill": CARD,
        "block_border_color": BORDER,
        "block_label_background_fill": CARD,
        "block_label_text_color": MUTED,
        "block_title_text_color": MUTED,
        "body_text_color": TEXT,
        "body_text_color_subdued": MUTED,
        "border_color_primary": BORDER,
        "input_background_fill": "#0f172a",
        "input_border_color": BORDER,
        "button_primary_background_fill": "#0ea5e9",
        "button_primary_background_fill_hover": "#38bdf8",
        "button_primary_text_color": "#04111d",
        "button_secondary_background_fill": "#1e293b",
        "button_secondary_background_fill_hover": "#273449",
        "button_secondary_text_color": TEXT,
        "color_accent_soft": "#0c4a6e",
    }
    both = {**values, **{f"{k}_dark": v for k, v in values.items()}}
    return gr.themes.Base(primary_hue="sky", neutral_hue="slate", font=fonts,
                          font_mono=mono).set(**both)


CSS = f"""
.gradio-container {{max-width: 1480px !important; background: {BG};}}
footer {{display: none !important;}}
.sx-header {{display:flex; align-items:baseline; gap:14px; margin: 4px 2px 0 2px;}}
.sx-header h1 {{font-size: 22px; font-weight: 700; margin: 0; color: {TEXT};}}
.sx-header span {{color: {MUTED}; font-size: 14px;}}
.sx-card {{background: {CARD}; border: 1px solid {BORDER}; border-radius: 14px;
  padding: 14px 16px; color: {TEXT}; height: 100%; box-sizing: border-box;}}
.sx-title {{font-size: 12px; letter-spacing: .08em; text-transform: uppercase;
  color: {MUTED}; margin-bottom: 8px; display:flex; justify-content:space-between; gap:8px;}}
.sx-muted {{color: {MUTED};}}
.sx-title > .sx-muted {{text-transform: none; letter-spacing: 0; white-space: nowrap;}}
.sx-sentiment {{text-align: center; padding-top: 18px;}}
.sx-big {{font-size: 92px; line-height: 1; font-weight: 800;
  font-variant-numeric: tabular-nums; letter-spacing: -0.02em; transition: color .25s;}}
.sx-word {{margin-top: 6px; font-size: 17px; font-weight: 600; min-height: 24px;}}
.sx-gauge {{position: relative; height: 12px; background: #0b1222; border-radius: 6px;
  margin: 16px 4px 4px 4px; overflow: hidden; border: 1px solid {BORDER};
  background-image: linear-gradient(90deg, rgba(239,68,68,.25), rgba(148,163,184,.12),
  rgba(34,197,94,.25));}}
.sx-gauge-zero {{position:absolute; left:50%; top:0; bottom:0; width:1px; background:{MUTED};}}
.sx-gauge-fill {{position:absolute; top:2px; bottom:2px; border-radius:4px;
  transition: all .2s;}}
.sx-gauge-marker {{position:absolute; top:-2px; bottom:-2px; width:3px; margin-left:-1px;
  background:#fff; border-radius:2px; transition: left .2s;}}
.sx-scale {{display:flex; justify-content:space-between; font-size:11px; color:{MUTED};
  margin: 0 2px;}}
.sx-words {{font-size: 19px; line-height: 1.55; min-height: 90px; max-height: 150px;
  overflow: hidden; display:flex; flex-wrap: wrap; gap: 0 6px; align-content: flex-end;}}
.sx-committed {{color: {TEXT};}}
.sx-tentative {{color: {MUTED}; font-style: italic; opacity: .8;
  border-bottom: 1px dashed #475569;}}
.sx-legend {{text-transform:none; letter-spacing:0; font-size:12px;}}
.sx-grid2 {{display:grid; grid-template-columns: 1fr 1.4fr; gap: 16px;}}
.sx-sub {{font-size: 13px; color: {MUTED}; margin-bottom: 6px; display:flex;
  justify-content: space-between; align-items: center; gap: 4px;}}
.sx-kv {{display:flex; align-items: baseline; gap: 6px; margin: 3px 0; font-size: 14px;}}
.sx-kv > span:first-child {{color:{MUTED}; min-width: 92px;}}
.sx-kv b {{font-size: 20px; font-variant-numeric: tabular-nums;}}
.sx-unit {{color:{MUTED}; font-size: 12px;}}
.sx-meter {{display:flex; align-items:center; gap:8px; margin: 5px 0; font-size: 13px;}}
.sx-meter-name {{width: 44px; color:{MUTED};}}
.sx-meter-track {{flex:1; height: 8px; background:#0b1222; border-radius: 4px;
  overflow:hidden;}}
.sx-meter-fill {{display:block; height:100%; background: linear-gradient(90deg, #f59e0b,
  #fbbf24); border-radius: 4px; transition: width .2s;}}
.sx-meter-value {{width: 36px; text-align:right; font-variant-numeric: tabular-nums;}}
.sx-face {{margin-left: 6px; padding: 1px 8px; border-radius: 999px; font-size: 12px;
  white-space: nowrap;}}
.sx-on {{background: rgba(45,212,191,.15); color:#5eead4; border: 1px solid #0f766e;}}
.sx-off {{background: rgba(148,163,184,.1); color:{MUTED}; border: 1px solid {BORDER};}}
.sx-table {{width:100%; border-collapse: collapse; font-size: 13px; margin-bottom: 6px;}}
.sx-table th {{text-align:left; color:{MUTED}; font-weight: 500; padding: 2px 4px;
  border-bottom: 1px solid {BORDER};}}
.sx-table td {{padding: 2px 4px;}}
.sx-num {{text-align:right; font-variant-numeric: tabular-nums;}}
.sx-table th:not(:first-child) {{text-align:right;}}
.sx-status {{display:flex; flex-wrap:wrap; gap:8px; align-items:center;
  justify-content:flex-end; padding-top: 6px;}}
#latency table, #latency tr, #latency th, #latency td {{border: none !important;
  background: none;}}
#latency table {{margin-bottom: 6px;}}
#latency th {{border-bottom: 1px solid {BORDER} !important;}}
.sx-total td {{font-weight: 700; color: #fff;}}
.sx-chip {{background:{CARD}; border:1px solid {BORDER}; border-radius:999px;
  padding: 3px 10px; font-size: 13px; color:{TEXT};}}
.sx-chip i {{font-style: normal; color:{MUTED}; margin-right: 4px;}}
.sx-pill {{padding: 3px 10px; border-radius: 999px; font-size: 13px; font-weight: 600;
  background:#1e293b; color:{MUTED};}}
.sx-good {{background: rgba(34,197,94,.15); color: #4ade80;}}
.sx-bad {{background: rgba(239,68,68,.18); color: #f87171;}}
.sx-dot {{display:inline-block; width:8px; height:8px; border-radius:50%;
  background:#4ade80; margin-right:6px; animation: sxpulse 1.4s infinite;}}
@keyframes sxpulse {{0% {{opacity:1}} 50% {{opacity:.3}} 100% {{opacity:1}}}}
.sx-error {{flex-basis:100%; color:#fca5a5; font-size: 13px;}}
.sx-plot {{padding: 8px 10px;}}
.sx-timeline {{width:100%; height: 300px; display:block;}}
.sx-timeline .sx-grid {{stroke:#1e293b; stroke-width:1;}}
.sx-timeline .sx-axis0 {{stroke:#475569; stroke-width:1;}}
.sx-timeline .sx-tick {{fill:{MUTED}; font-size: 11px;}}
.sx-timeline .sx-panel {{fill:{MUTED}; font-size: 12px;}}
.sx-timeline .sx-dash-key {{fill:#cbd5e1;}}
.sx-timeline .sx-line {{fill:none; stroke:url(#sxg); stroke-width:2.5;
  stroke-linejoin:round;}}
.sx-timeline .sx-area {{fill:url(#sxg); opacity:.12; stroke:none;}}
.sx-timeline .sx-mean {{fill:none; stroke:#cbd5e1; stroke-width:1.5;
  stroke-dasharray:5 4; opacity:.8;}}
.sx-timeline .sx-threshold {{stroke:#f87171; stroke-width:1; stroke-dasharray:2 4;}}
.sx-timeline .sx-sig {{fill:none; stroke-width:1.6; opacity:.9;}}
.sx-timeline .sx-face-band {{fill:#2dd4bf; opacity:.6;}}
.sx-timeline .sx-now {{fill:#fff; stroke:#0b1020; stroke-width:2;}}
.sx-timeline .sx-empty {{fill:{MUTED}; font-size: 14px;}}
.sx-mask-row {{display:flex; align-items:center; gap:10px; margin: 6px 0;}}
.sx-mask-name {{width: 92px; font-size: 13px; display:flex; flex-direction:column;}}
.sx-mask-name small {{color:{MUTED}; font-size: 11px;}}
.sx-mask-img {{flex:1; height: 54px; width: 100%; image-rendering: pixelated;
  border-radius: 6px; border:1px solid {BORDER};}}
.sx-mask-scale {{display:flex; align-items:center; gap:8px; font-size:11px; color:{MUTED};}}
.sx-mask-bar {{display:inline-block; width: 120px; height: 8px; border-radius: 4px;
  background: linear-gradient(90deg, #0b1026, #3b0f70, #8c2981, #de4968, #fe9f6d, #fcfdbf);}}
.sx-agg {{display:grid; grid-template-columns: repeat(3, 1fr); gap: 10px;}}
.sx-agg b {{display:block; font-size: 26px; font-variant-numeric: tabular-nums;}}
.sx-agg span {{color:{MUTED}; font-size: 12px;}}
.sx-alert {{margin-top: 10px; padding: 8px 12px; border-radius: 10px; font-weight: 600;
  background: rgba(239,68,68,.18); border: 1px solid #b91c1c; color: #fecaca;}}
.sx-calm {{margin-top: 10px; padding: 8px 12px; border-radius: 10px; font-size: 13px;
  background: rgba(148,163,184,.08); border: 1px solid {BORDER}; color:{MUTED};}}
#player video {{max-height: 260px;}}
.sx-table th {{white-space: nowrap;}}
.sx-calib {{display:flex; flex-direction:column; gap: 8px;}}
.sx-calib-counts {{display:grid; grid-template-columns: 1fr; gap: 0;}}
.sx-small {{font-size: 12px; overflow-wrap: anywhere;}}
.sx-rec {{display:inline-block; width:8px; height:8px; border-radius:50%;
  background:#f87171; margin-right:6px; animation: sxpulse 1.2s infinite;}}
"""

# Keeps the page dark whatever the OS prefers, and the player in step with the pipeline:
# plays while the pipeline runs (muted if the browser refuses sound without a click) and
# seeks when it drifts by more than a second; pauses when the pipeline stops.
HEAD = """
<script>
(function () {
  function tick() {
    if (document.body && !document.body.classList.contains('dark')) {
      document.body.classList.add('dark');
    }
    var st = document.querySelector('#status .sx-status');
    var v = document.querySelector('#player video');
    if (!st || !v) { return; }
    var t = parseFloat(st.dataset.mediaT);
    var running = st.dataset.running === 'true';
    if (!running || isNaN(t)) {
      if (v.dataset.sxAuto === '1' && !v.paused) { v.pause(); }
      return;
    }
    if (v.paused) {
      v.dataset.sxAuto = '1';
      var p = v.play();
      if (p && p.catch) {
        p.catch(function () { v.muted = true; v.play().catch(function () {}); });
      }
    }
    if (Math.abs(v.currentTime - t) > 1.0) { v.currentTime = t; }
  }
  setInterval(tick, 500);
})();
</script>
"""
