"""The HTML report: one self-contained file (inline CSS/JS, no network, no external assets).

Totals, a filterable and sortable test table, expandable failure details, a per-worker
timeline and skip reasons. The run is embedded as JSON and drawn by a small script; test ids
and tracebacks are inserted with ``textContent`` only, never as markup. Pure: Run in, text out.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from dsvm.results.known import KnownFailures
from dsvm.results.stream import Run
from dsvm.results.summary import STATUS_LABEL, summarize, trim_traceback

MAX_DETAIL = 20_000  # characters of attachments kept per test in the page


def page_data(run: Run, known: KnownFailures | None = None, title: str = "Tempest results",
              history_link: str | None = None,
              compliance: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The JSON the page script draws (also handy for tests)."""
    known = known or KnownFailures()
    summary = summarize(run, known)
    t0 = run.started
    rows = []
    for i, t in enumerate(run.tests):
        detail = ""
        if t.status != "success":
            detail = t.details_text()
            if t.attachment("traceback"):
                detail = trim_traceback(detail, limit=60)
        worker = t.worker
        rows.append({
            "i": i, "id": t.test_id, "s": t.status, "d": round(t.duration, 6),
            "w": worker if worker is not None else -1,
            "t": round((t.start - t0).total_seconds(), 6) if t.start and t0 else 0,
            "x": detail[:MAX_DETAIL], "b": known.bug_for(t) or "",
        })
    return {
        "title": title, "source": run.source, "ok": run.is_ok, "problem": run.problem,
        "started": t0.isoformat(timespec="seconds") if t0 else None,
        "wall": round(run.wall_seconds, 3), "total": len(run.tests),
        "counts": summary.counts, "labels": STATUS_LABEL, "tests": rows,
        "skips": [{"reason": g.reason, "count": g.count} for g in summary.skips],
        "history": history_link, "generated": datetime.now().isoformat(timespec="seconds"),
        "compliance": _compliance(compliance),
    }


def _compliance(data: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The compliance section's data (dsvm/compliance: checks and new log signatures)."""
    if not data:
        return None
    return {"status": data.get("status"), "checks": list(data.get("checks") or []),
            "new": [{"service": s["service"], "where": s["first"]["where"],
                     "text": s["first"]["text"]} for s in data.get("new_signatures") or []]}


def _script_json(data: dict[str, Any]) -> str:
    # Inside <script>, "</" would end the element: escape it (and U+2028/9 for old parsers).
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return (text.replace("</", "<\\/").replace("<!--", "<\\!--")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def render(run: Run, known: KnownFailures | None = None, title: str = "Tempest results",
           history_link: str | None = None,
           compliance: Mapping[str, Any] | None = None) -> str:
    """The whole HTML document (with a vendor-compliance section when ``compliance``)."""
    data = page_data(run, known, title, history_link, compliance)
    return (TEMPLATE.replace("%%TITLE%%", _escape(title))
            .replace("%%DATA%%", _script_json(data)))


def _escape(text: str) -> str:
    return (text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;"))


TEMPLATE = r"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>%%TITLE%%</title>
<style>
:root{--bg:#f6f7f9;--card:#fff;--ink:#1d2330;--mute:#667085;--line:#e4e7ec;
--success:#12b76a;--fail:#f04438;--crashed:#b42318;--uxsuccess:#f79009;--skip:#98a2b3;
--xfail:#7a5af8}
*{box-sizing:border-box}body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",
Roboto,sans-serif;background:var(--bg);color:var(--ink)}
header{padding:20px 28px;background:#101828;color:#fff}header h1{margin:0;font-size:20px}
header .sub{color:#98a2b3;font-size:13px;margin-top:4px}.verdict{float:right;padding:6px 14px;
border-radius:999px;font-weight:600}.verdict.ok{background:var(--success)}
.verdict.bad{background:var(--fail)}main{padding:20px 28px;max-width:1400px;margin:auto}
.cards{display:flex;gap:12px;flex-wrap:wrap;margin-bottom:18px}.card{background:var(--card);
border:1px solid var(--line);border-radius:10px;padding:12px 16px;min-width:120px;
cursor:pointer}.card b{display:block;font-size:24px}.card span{color:var(--mute);font-size:12px}
.card.active{outline:2px solid #2e90fa}section{background:var(--card);border:1px solid
var(--line);border-radius:10px;padding:14px 16px;margin-bottom:18px}section h2{font-size:15px;
margin:0 0 10px}.bar{display:flex;height:10px;border-radius:5px;overflow:hidden;margin:6px 0 0}
.controls{display:flex;gap:10px;align-items:center;margin-bottom:10px;flex-wrap:wrap}
input[type=search]{flex:1;min-width:240px;padding:8px 10px;border:1px solid var(--line);
border-radius:8px;font:inherit}table{border-collapse:collapse;width:100%}th,td{text-align:left;
padding:6px 8px;border-bottom:1px solid var(--line);vertical-align:top}th{cursor:pointer;
user-select:none;color:var(--mute);font-weight:600;font-size:12px;text-transform:uppercase}
th.sorted::after{content:" \25BE"}th.sorted.asc::after{content:" \25B4"}td.num{text-align:right;
font-variant-numeric:tabular-nums;white-space:nowrap}td.name{word-break:break-all;
font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12.5px}.pill{display:inline-block;
padding:1px 8px;border-radius:999px;color:#fff;font-size:12px;white-space:nowrap}
.s-success{background:var(--success)}.s-fail{background:var(--fail)}.s-crashed{background:
var(--crashed)}.s-uxsuccess{background:var(--uxsuccess)}.s-skip{background:var(--skip)}
.s-xfail{background:var(--xfail)}tr.has-detail td.name{cursor:pointer}
tr.has-detail td.name::before{content:"\25B8 ";color:var(--mute)}tr.open td.name::before{
content:"\25BE "}pre{white-space:pre-wrap;word-break:break-word;background:#0b1220;color:#e6edf3;
padding:10px 12px;border-radius:8px;font-size:12px;margin:4px 0 8px;max-height:420px;
overflow:auto}.bug{background:#fef0c7;color:#93370d;border-radius:6px;padding:1px 6px;
font-size:12px;margin-left:6px}.muted{color:var(--mute)}#timeline{position:relative;
overflow-x:auto}.lane{position:relative;height:22px;margin:3px 0 3px 70px;background:#f2f4f7;
border-radius:4px}.lane label{position:absolute;left:-70px;width:64px;text-align:right;
font-size:12px;color:var(--mute);top:3px}.blk{position:absolute;top:2px;height:18px;
border-radius:2px;min-width:1px;opacity:.9}.blk:hover{opacity:1;outline:1px solid #101828}
#tip{position:fixed;pointer-events:none;background:#101828;color:#fff;padding:6px 8px;
border-radius:6px;font-size:12px;display:none;max-width:520px;z-index:9}
.axis{margin-left:70px;display:flex;justify-content:space-between;color:var(--mute);
font-size:11px}footer{color:var(--mute);font-size:12px;text-align:center;padding:10px}
.warn{background:#fffaeb;border-color:#fedf89}a{color:#1570ef}
</style></head><body>
<header><span id="verdict" class="verdict"></span><h1 id="title"></h1>
<div class="sub" id="sub"></div></header>
<main>
<div id="problem"></div>
<div class="cards" id="cards"></div>
<section><h2>Tests</h2>
<div class="controls"><input type="search" id="filter" placeholder="Filter by test id or
 status (regular expression)…" autocomplete="off">
<span class="muted" id="shown"></span></div>
<table id="tests"><thead><tr><th data-k="s">Status</th><th data-k="id">Test</th>
<th data-k="d" class="num">Seconds</th><th data-k="w" class="num">Worker</th></tr></thead>
<tbody></tbody></table></section>
<section><h2>Timeline by worker</h2><div class="muted" style="margin-bottom:6px">Each block
is one test, placed at its start time on the worker that ran it. Hover for details.</div>
<div id="timeline"></div><div class="axis" id="axis"></div></section>
<section><h2>Skip reasons</h2><table id="skips"><thead><tr><th class="num">Tests</th>
<th>Reason</th></tr></thead><tbody></tbody></table></section>
<section id="compliance" hidden><h2>Vendor compliance</h2><table><thead><tr><th>Check</th>
<th>Verdict</th><th>Evidence</th></tr></thead><tbody></tbody></table><ul></ul></section>
</main><div id="tip"></div><footer id="foot"></footer>
<script type="application/json" id="data">%%DATA%%</script>
<script>
(function(){
"use strict";
var D=JSON.parse(document.getElementById("data").textContent);
function el(tag,cls,text){var e=document.createElement(tag);if(cls)e.className=cls;
 if(text!==undefined&&text!==null)e.textContent=String(text);return e;}
var COLORS={success:"var(--success)",fail:"var(--fail)",crashed:"var(--crashed)",
 uxsuccess:"var(--uxsuccess)",skip:"var(--skip)",xfail:"var(--xfail)"};
var ORDER=["fail","crashed","uxsuccess","skip","xfail","success"];
document.title=D.title;document.getElementById("title").textContent=D.title;
var v=document.getElementById("verdict");v.textContent=D.ok?"PASSED":"FAILED";
v.classList.add(D.ok?"ok":"bad");
document.getElementById("sub").textContent=D.total+" tests \u00b7 "+D.wall.toFixed(1)+
 " s wall time"+(D.started?" \u00b7 started "+D.started+" UTC":"")+" \u00b7 "+D.source;
if(D.problem){var p=el("section","warn");p.appendChild(el("b",null,
 "The stream is truncated or corrupt: "));p.appendChild(el("span",null,D.problem+
 " \u2014 the tests completed before it are counted."));
 document.getElementById("problem").appendChild(p);}
if(D.history){var h=el("a",null,"History of these tests \u2192");h.href=D.history;
 h.id="history-link";document.getElementById("sub").appendChild(el("span",null," \u00b7 "));
 document.getElementById("sub").appendChild(h);}
var cards=document.getElementById("cards"),statusFilter=null;
function card(label,n,key){var c=el("div","card");c.appendChild(el("b",null,n));
 c.appendChild(el("span",null,label));c.dataset.status=key||"";
 if(key){c.style.borderTop="4px solid "+COLORS[key];}
 c.addEventListener("click",function(){statusFilter=(statusFilter===key||!key)?null:key;
  Array.prototype.forEach.call(cards.children,function(x){x.classList.toggle("active",
  statusFilter!==null&&x.dataset.status===statusFilter);});draw();});
 cards.appendChild(c);}
card("total",D.total,null);
ORDER.forEach(function(s){if(D.counts[s])card(D.labels[s],D.counts[s],s);});
var bar=el("div","bar");ORDER.forEach(function(s){if(!D.counts[s])return;var b=el("div");
 b.style.width=(100*D.counts[s]/D.total)+"%";b.style.background=COLORS[s];bar.appendChild(b);});
cards.appendChild(bar);bar.style.flexBasis="100%";
var tbody=document.querySelector("#tests tbody"),input=document.getElementById("filter");
var sortKey="s",sortAsc=true,rank={};ORDER.forEach(function(s,i){rank[s]=i;});
function cmp(a,b){var x=a[sortKey],y=b[sortKey];if(sortKey==="s"){x=rank[x];y=rank[y];}
 if(x<y)return sortAsc?-1:1;if(x>y)return sortAsc?1:-1;return a.i-b.i;}
function matcher(){var q=input.value.trim();if(!q)return function(){return true;};
 var re;try{re=new RegExp(q,"i");}catch(e){var low=q.toLowerCase();
 return function(t){return (t.id+" "+t.s).toLowerCase().indexOf(low)>=0;};}
 return function(t){return re.test(t.id)||re.test(t.s)||(t.b&&re.test(t.b));};}
function draw(){var m=matcher(),rows=D.tests.filter(function(t){
 return m(t)&&(statusFilter===null||t.s===statusFilter);}).sort(cmp);
 var frag=document.createDocumentFragment(),limit=Math.min(rows.length,5000);
 for(var i=0;i<limit;i++){frag.appendChild(row(rows[i]));}
 tbody.replaceChildren(frag);
 document.getElementById("shown").textContent=rows.length+" of "+D.total+" shown"+
  (rows.length>limit?" (first "+limit+")":"");
 document.querySelectorAll("#tests th").forEach(function(th){
  th.classList.toggle("sorted",th.dataset.k===sortKey);
  th.classList.toggle("asc",th.dataset.k===sortKey&&sortAsc);});}
function row(t){var tr=el("tr");tr.dataset.status=t.s;
 var td=el("td");td.appendChild(el("span","pill s-"+t.s,D.labels[t.s]||t.s));tr.appendChild(td);
 var name=el("td","name",t.id);if(t.b){var bug=el("span","bug","known: "+t.b);
  name.appendChild(bug);}tr.appendChild(name);
 tr.appendChild(el("td","num",t.d.toFixed(3)));tr.appendChild(el("td","num",t.w<0?"":t.w));
 if(t.x){tr.classList.add("has-detail");name.addEventListener("click",function(){
  var next=tr.nextSibling;if(next&&next.classList.contains("detail")){next.remove();
  tr.classList.remove("open");return;}var d=el("tr","detail"),c=el("td");c.colSpan=4;
  c.appendChild(el("pre",null,t.x));d.appendChild(c);tr.after(d);tr.classList.add("open");});}
 return tr;}
document.querySelectorAll("#tests th").forEach(function(th){th.addEventListener("click",
 function(){var k=th.dataset.k;if(k===sortKey){sortAsc=!sortAsc;}else{sortKey=k;
 sortAsc=(k!=="d");}draw();});});
input.addEventListener("input",draw);
var fromHash=decodeURIComponent(location.hash.slice(1));if(fromHash){input.value=fromHash;}
draw();
var lanes={},end=0;D.tests.forEach(function(t){if(t.w<0&&t.d===0)return;
 (lanes[t.w]=lanes[t.w]||[]).push(t);end=Math.max(end,t.t+t.d);});
var tl=document.getElementById("timeline"),tip=document.getElementById("tip");
var width=Math.max(600,tl.clientWidth-80);
Object.keys(lanes).sort(function(a,b){return a-b;}).forEach(function(w){
 var lane=el("div","lane");lane.appendChild(el("label",null,w<0?"?":"worker "+w));
 lanes[w].forEach(function(t){var b=el("div","blk");b.style.background=COLORS[t.s];
  b.style.left=(end?100*t.t/end:0)+"%";b.style.width=(end?100*t.d/end:0)+"%";
  b.addEventListener("mousemove",function(e){tip.textContent=t.id+" \u2014 "+
   (D.labels[t.s]||t.s)+", "+t.d.toFixed(3)+" s (at +"+t.t.toFixed(1)+" s)";
   tip.style.display="block";tip.style.left=(e.clientX+12)+"px";tip.style.top=(e.clientY+12)+"px";});
  b.addEventListener("mouseleave",function(){tip.style.display="none";});
  b.addEventListener("click",function(){input.value=t.id.replace(/[.*+?^${}()|[\]\\]/g,"\\$&");
   statusFilter=null;draw();document.getElementById("tests").scrollIntoView();});
  lane.appendChild(b);});tl.appendChild(lane);});
var axis=document.getElementById("axis");for(var k=0;k<=4;k++){
 axis.appendChild(el("span",null,"+"+(end*k/4).toFixed(1)+" s"));}
var sb=document.querySelector("#skips tbody");
if(!D.skips.length){var r=el("tr");var c=el("td","muted","No tests were skipped.");c.colSpan=2;
 r.appendChild(c);sb.appendChild(r);}
D.skips.forEach(function(s){var r=el("tr");r.appendChild(el("td","num",s.count));
 r.appendChild(el("td",null,s.reason));sb.appendChild(r);});
if(D.compliance){var cs=document.getElementById("compliance");cs.hidden=false;
 cs.querySelector("h2").textContent="Vendor compliance: "+D.compliance.status;
 D.compliance.checks.forEach(function(c){var r=el("tr");r.appendChild(el("td",null,c.id));
  r.appendChild(el("td",null,c.status));var ev=el("td");c.evidence.slice(0,8).forEach(
  function(e){ev.appendChild(el("div",null,e));});r.appendChild(ev);
  cs.querySelector("tbody").appendChild(r);});
 D.compliance.new.forEach(function(n){cs.querySelector("ul").appendChild(el("li",null,
  "new in "+n.service+": "+n.where+" "+n.text));});}
document.getElementById("foot").textContent="generated by dsvm at "+D.generated;
})();
</script></body></html>
"""
