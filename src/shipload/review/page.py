"""The review page: server-rendered HTML with a little inline JavaScript (no build, no CDN)."""

from __future__ import annotations

import html
import json
import math
from typing import Any
from urllib.parse import urlencode

from shipload.bands import GSD_BANDS, band_label
from shipload.review.store import Event
from shipload.review.table import STATES, Chip

_GEO_SHORT = {"gsd_m": "GSD {:.2f} m", "sun_elevation_deg": "sun el {:.0f}°",
              "sun_azimuth_deg": "sun az {:.0f}°", "off_nadir_deg": "off-nadir {:.0f}°",
              "sensor_azimuth_deg": "sat az {:.0f}°", "heading_deg": "heading {:.0f}°"}

CSS = """
body{font-family:system-ui,sans-serif;margin:0;background:#f4f5f7;color:#222}
header{position:sticky;top:0;background:#fff;border-bottom:1px solid #ccd;padding:.5em 1em;
 z-index:2}
h1{font-size:1.1em;margin:0 0 .3em}
form.filters{display:flex;gap:.6em;flex-wrap:wrap;align-items:center;font-size:.9em}
.counts{font-size:.9em;margin:.3em 0}
.counts b{font-variant-numeric:tabular-nums}
.help{font-size:.8em;color:#555}
main{display:grid;grid-template-columns:repeat(auto-fill,minmax(300px,1fr));gap:.6em;padding:1em}
.card{position:relative;background:#fff;border:2px solid #dde;border-radius:6px;padding:.4em;
 font-size:.82em}
.card.focus{border-color:#1a6ed8;box-shadow:0 0 0 3px #1a6ed855}
.card .imgs{display:flex;gap:.3em;align-items:center}
.card img{background:#ccc;image-rendering:auto}
.card img.chip{width:120px;height:120px;object-fit:contain}
.card img.view{width:160px;height:120px;object-fit:contain}
.card .path{font-family:monospace;font-size:.85em;word-break:break-all;color:#444}
.badge{display:inline-block;padding:0 .4em;border-radius:3px;font-weight:600}
.call-laden{background:#c0392b22;color:#8e2a20}.call-empty{background:#2471a322;color:#1b4f72}
.lab{position:absolute;top:.5em;right:.5em;font-size:1.1em}
.lab-empty{background:#2471a3;color:#fff}.lab-laden{background:#c0392b;color:#fff}
.lab-unsure{background:#888;color:#fff}
.card.agree{border-left:6px solid #2e8b57}.card.disagree{border-left:6px solid #d35400}
.err{color:#b00;font-weight:600}
nav.pages{padding:0 1em 1em;font-size:.9em}
#status{font-size:.85em;color:#555;margin-left:1em}
"""

JS = """
(function(){
const token=document.querySelector('meta[name=shipload-token]').content;
const cards=[...document.querySelectorAll('.card')];
const status=document.getElementById('status');
let at=0; const undo=[];
function focus(i){if(!cards.length)return;at=Math.max(0,Math.min(cards.length-1,i));
 cards.forEach((c,k)=>c.classList.toggle('focus',k===at));
 cards[at].scrollIntoView({block:'nearest'});}
function show(c,label){c.dataset.label=label||'';const b=c.querySelector('.lab');
 b.textContent=label||'';b.className='badge lab'+(label?' lab-'+label:'');
 c.classList.remove('agree','disagree');
 if((label==='empty'||label==='laden')&&c.dataset.call)
  c.classList.add(label===c.dataset.call?'agree':'disagree');}
function counts(k){const f=(v)=>v===null?'n/a':(100*v).toFixed(1)+' %';
 document.getElementById('n-labelled').textContent=k.labelled;
 document.getElementById('n-unsure').textContent=k.unsure;
 document.getElementById('n-agree').textContent=k.agree;
 document.getElementById('n-disagree').textContent=k.disagree;
 document.getElementById('acc').textContent=f(k.accuracy);
 document.getElementById('ci').textContent=k.interval?
  '(95 % interval '+f(k.interval[0])+' – '+f(k.interval[1])+')':'';}
async function post(url,body){const r=await fetch(url,{method:'POST',
  headers:{'Content-Type':'application/json','X-Shipload-Token':token},body:JSON.stringify(body)});
 const j=await r.json().catch(()=>({error:r.statusText}));
 if(!r.ok)throw new Error(j.error||r.statusText);return j;}
async function label(c,value,remember){const prev=c.dataset.label||null;
 try{const j=await post('/api/label',{path:c.dataset.path,label:value});
  if(remember)undo.push({c,prev});show(c,j.label);counts(j.counts);
  status.textContent=(value?'labelled '+value:'label withdrawn')+': '+c.dataset.path;
 }catch(e){status.textContent='not saved: '+e.message;}}
document.addEventListener('keydown',async(ev)=>{
 if(ev.target.closest('input,select,textarea')||ev.ctrlKey||ev.metaKey||ev.altKey)return;
 const k=ev.key.toLowerCase(), c=cards[at];
 if(k==='arrowright'){focus(at+1);}else if(k==='arrowleft'){focus(at-1);}
 else if(k==='s'){focus(at+1);}
 else if(c&&(k==='e'||k==='l'||k==='u')){
  const v={e:'empty',l:'laden',u:'unsure'}[k];await label(c,v,true);focus(at+1);}
 else if(k==='z'){const u=undo.pop();if(u){await label(u.c,u.prev,false);
  focus(cards.indexOf(u.c));}}
 else return;
 ev.preventDefault();});
cards.forEach((c,i)=>c.addEventListener('click',()=>focus(i)));
document.getElementById('export').addEventListener('click',async()=>{
 try{const j=await post('/api/export',{});
  status.textContent='exported '+j.rows+' labels to '+j.path;}
 catch(e){status.textContent='export failed: '+e.message;}});
focus(0);
})();
"""


def _fmt(v: float, spec: str) -> str:
    return spec.format(v) if math.isfinite(v) else "—"


def card(c: Chip, label: Event | None) -> str:
    """One chip's card: the chip and the model's view, the outputs, the geometry, the label."""
    e = html.escape
    lab = (label.label or "") if label else ""
    cls = ""
    if lab in ("empty", "laden") and c.call:
        cls = " agree" if lab == c.call else " disagree"
    geo = " · ".join(_GEO_SHORT[k].format(v) for k, v in c.geometry().items() if k in _GEO_SHORT)
    if c.error:
        body = f'<div class="err">{e(c.error)}</div>'
    else:
        body = (f'<span class="badge call-{c.call}">{c.call}</span> '
                f'p_laden <b>{c.p_laden:.3f}</b> · load {_fmt(c.load_fraction, "{:.2f}")} · '
                f'freeboard {_fmt(c.freeboard_m, "{:.1f} m")}')
    return (
        f'<div class="card{cls}" data-i="{c.i}" data-path="{e(c.key)}" data-call="{c.call}" '
        f'data-label="{e(lab)}"><span class="badge lab{" lab-" + lab if lab else ""}">{lab}'
        f'</span><div class="imgs"><img class="chip" loading="lazy" alt="chip" '
        f'src="/chip/{c.i}"><img class="view" loading="lazy" alt="model view" '
        f'src="/view/{c.i}"></div><div>{body}</div><div>{e(geo) or "no geometry"}</div>'
        f'<div class="path">{e(c.key)}</div></div>')


def _select(name: str, options: list[tuple[str, str]], value: str) -> str:
    opts = "".join(f'<option value="{v}"{" selected" if v == value else ""}>{html.escape(t)}'
                   f'</option>' for v, t in options)
    return f'<select name="{name}" onchange="this.form.submit()">{opts}</select>'


def render(title: str, token: str, chips: list[tuple[Chip, Event | None]], counts: dict[str, Any],
           filters: dict[str, str], page: int, pages: int, total: int, labels_csv: str) -> str:
    """The whole page.

    Args:
        title: the predictions file's name.
        token: the session token the page's requests must carry.
        chips: this page's chips with their current labels.
        counts: ``Table.counts``.
        filters: the current ``call``, ``band``, ``state`` and ``q``.
        page: this page's number (from 1).
        pages: how many pages there are.
        total: chips passing the filters.
        labels_csv: where "Export" writes.
    """
    e = html.escape
    bands = [("all", "any GSD")] + [(band_label(*b), f"GSD {band_label(*b)} m")
                                    for b in GSD_BANDS] + [("unknown", "GSD unknown")]
    form = (
        '<form class="filters" method="get">'
        + _select("call", [("all", "any call"), ("laden", "called laden"),
                           ("empty", "called empty"), ("error", "errors")], filters["call"])
        + _select("band", bands, filters["band"])
        + _select("state", [(s, s) for s in STATES], filters["state"])
        + f'<input name="q" placeholder="text (path, vessel…)" value="{e(filters["q"])}">'
        + '<button type="submit">filter</button>'
        + f'<button type="button" id="export" title="write {e(labels_csv)}">Export labels</button>'
        + '<span id="status"></span></form>')
    acc = counts["accuracy"]
    f = (lambda v: f"{100 * v:.1f} %")
    iv = counts["interval"]
    ci = f"(95 % interval {f(iv[0])} – {f(iv[1])})" if iv else ""
    head = (
        f'<div class="counts">{counts["chips"]} chips · {total} shown · labelled '
        f'<b id="n-labelled">{counts["labelled"]}</b> (unsure <b id="n-unsure">'
        f'{counts["unsure"]}</b>) · agree <b id="n-agree">{counts["agree"]}</b> · disagree '
        f'<b id="n-disagree">{counts["disagree"]}</b> · model accuracy on labels '
        f'<b id="acc">{f(acc) if acc is not None else "n/a"}</b> <span id="ci">{ci}</span></div>'
        '<div class="help">Least sure first. Keys: <b>E</b> empty · <b>L</b> laden · '
        '<b>U</b> unsure · <b>S</b> skip · <b>←/→</b> move · <b>Z</b> undo. Each chip: '
        'as given, and the model\'s hull-aligned view.</div>')
    q = {k: v for k, v in filters.items() if v and v != "all"}
    links = []
    if page > 1:
        links.append(f'<a href="?{urlencode({**q, "page": page - 1})}">← previous</a>')
    links.append(f"page {page} of {max(pages, 1)}")
    if page < pages:
        links.append(f'<a href="?{urlencode({**q, "page": page + 1})}">next →</a>')
    grid = "".join(card(c, lab) for c, lab in chips) or "<p>No chips match these filters.</p>"
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f'<meta name="shipload-token" content="{e(token)}">'
        f'<title>shipload review · {e(title)}</title><style>{CSS}</style></head><body>'
        f'<header><h1>shipload review · {e(title)}</h1>{form}{head}</header>'
        f'<main>{grid}</main><nav class="pages">{" · ".join(links)}</nav>'
        f'<script>{JS}</script></body></html>')


def dumps(obj: Any) -> bytes:
    """JSON for the API (NaN as null)."""
    return json.dumps(obj, allow_nan=False, default=str).encode()
