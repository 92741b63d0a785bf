/// The status page served at `GET /`: one self-contained HTML document (no external script,
/// style or font, so it works on an air-gapped network) that reads `/v1/status` every two
/// seconds, and, with the admin token when one is set, `/v1/incidents`, `/v1/maintenance-windows`
/// and `/v1/queue/events?state=dead`. The token is kept in the tab's sessionStorage only; actions
/// that change state (retrying dead letters, ending a window) send it and say so when refused.
enum StatusPage {
    static let html = """
        <!doctype html>
        <html lang="en"><head><meta charset="utf-8"><title>pdrelay status</title>
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <style>
        body{font:14px/1.4 system-ui,sans-serif;margin:1.2em;color:#1d2430;background:#f7f8fa}
        h1{font-size:20px;margin:0 0 .2em}h2{font-size:15px;margin:1.2em 0 .4em}
        table{border-collapse:collapse;background:#fff;min-width:40%}td,th{border:1px solid #d5d9e0;padding:3px 8px;text-align:left}
        th{background:#eef1f5}.ok{color:#17692c;font-weight:600}.bad{color:#b3261e;font-weight:600}.muted{color:#687080}
        .grid{display:flex;flex-wrap:wrap;gap:1.5em}.card{flex:1 1 420px}#token{width:22em}
        svg{background:#fff;border:1px solid #d5d9e0}code{font-size:12px}
        </style></head><body>
        <h1>pdrelay <span id="version"></span> &middot; node <span id="node"></span></h1>
        <div class="muted">Refreshes every 2 s. <span id="updated"></span> <span id="error" class="bad"></span></div>
        <div style="margin:.6em 0">Admin token (kept in this tab only): <input id="token" type="password" autocomplete="off">
        <button id="savetoken">Use</button></div>
        <div class="grid">
        <div class="card"><h2>Cluster</h2><table id="cluster"></table><div id="problems"></div></div>
        <div class="card"><h2>Queue</h2><table id="queue"></table></div>
        </div>
        <h2>Deliveries, last 10 minutes (bars: delivered per 10 s; line: mean latency)</h2>
        <svg id="chart" width="720" height="160" role="img" aria-label="deliveries"></svg>
        <div class="grid">
        <div class="card"><h2>Upstream answers, last 10 minutes</h2><table id="answers"></table></div>
        <div class="card"><h2>Recent problems</h2><table id="recent"></table></div>
        </div>
        <div class="grid">
        <div class="card"><h2>Dead letters <button id="retry">Retry all</button></h2><table id="dead"></table></div>
        <div class="card"><h2>Open incidents</h2><table id="incidents"></table></div>
        <div class="card"><h2>Maintenance windows</h2><table id="windows"></table></div>
        </div>
        <h2>Failover drills</h2><table id="drills"></table>
        <script>
        "use strict";
        const $ = id => document.getElementById(id);
        const esc = v => String(v ?? "").replace(/[&<>"']/g, c => ({"&":"&amp;","<":"&lt;",">":"&gt;",'"':"&quot;","'":"&#39;"}[c]));
        const token = () => sessionStorage.getItem("pdrelay-admin-token") || "";
        const headers = () => token() ? {"Authorization": "Bearer " + token()} : {};
        const when = ms => new Date(ms).toISOString().replace("T", " ").slice(0, 19) + "Z";
        function rows(table, head, body) {
          $(table).innerHTML = "<tr>" + head.map(h => "<th>" + esc(h) + "</th>").join("") + "</tr>" +
            (body.length ? body.map(r => "<tr>" + r.map(c => "<td>" + c + "</td>").join("") + "</tr>").join("")
                         : "<tr><td class=muted colspan=" + head.length + ">none</td></tr>");
        }
        async function admin(path, table, head, map, pick) {
          try {
            const r = await fetch(path, {headers: headers()});
            if (r.status === 401) { rows(table, ["needs the admin token"], []); return; }
            const j = await r.json(); rows(table, head, pick(j).map(map));
          } catch (e) { rows(table, ["unavailable: " + esc(e)], []); }
        }
        function chart(series) {
          const w = 720, h = 160, n = series.length, bw = w / n;
          const maxD = Math.max(1, ...series.map(b => b.delivered + b.retried + b.dead_lettered));
          const maxL = Math.max(1, ...series.map(b => b.latency_avg_ms));
          let s = "";
          series.forEach((b, i) => {
            const total = b.delivered + b.retried + b.dead_lettered;
            const hd = (h - 20) * b.delivered / maxD, hf = (h - 20) * (total - b.delivered) / maxD;
            s += `<rect x="${i * bw + 1}" y="${h - hd}" width="${bw - 2}" height="${hd}" fill="#4a7fd4"><title>${when(b.start_ms)}: ${b.delivered} delivered, ${b.retried} retried, ${b.dead_lettered} dead-lettered, mean ${b.latency_avg_ms} ms</title></rect>`;
            if (hf > 0) s += `<rect x="${i * bw + 1}" y="${h - hd - hf}" width="${bw - 2}" height="${hf}" fill="#d9534f"/>`;
          });
          const pts = series.map((b, i) => `${i * bw + bw / 2},${h - (h - 20) * b.latency_avg_ms / maxL}`).join(" ");
          s += `<polyline points="${pts}" fill="none" stroke="#e0a800" stroke-width="2"/>`;
          s += `<text x="4" y="14" font-size="11">max ${maxD} events / 10 s; latency max ${maxL} ms</text>`;
          $("chart").innerHTML = s;
        }
        async function refresh() {
          try {
            const r = await fetch("/v1/status"); const s = await r.json(); const c = s.cluster;
            $("version").textContent = s.version; $("node").textContent = c.node_id;
            $("updated").textContent = "Updated " + when(s.now_ms) + ".";
            $("error").textContent = "";
            const members = [{id: c.node_id, url: "(this node)"}].concat(c.peers || []).sort((a, b) => a.id - b.id);
            rows("cluster", ["node", "role", "contact", "lag (entries)"], members.map(m => [
              "node " + m.id + (m.id === c.node_id ? " (this node)" : ""),
              m.id === c.leader_id ? "<b>leader</b>" : (m.id === c.node_id ? esc(c.role) :
                (c.role === "leader" && (m.last_contact_ms_ago == null || m.last_contact_ms_ago > 5000) ? "<span class=bad>not answering</span>" : "follower")),
              m.id === c.node_id ? "-" : (m.last_contact_ms_ago == null ? "unknown" : esc(m.last_contact_ms_ago) + " ms ago"),
              m.lag_entries == null ? "-" : esc(m.lag_entries)]));
            $("problems").innerHTML = "<p>term " + esc(c.term) + ", leader " + (c.leader_id == null ? "<span class=bad>none known</span>" : "node " + esc(c.leader_id)) +
              ", lease " + esc(c.lease_remaining_ms) + " ms, applied " + esc(c.applied_index) + " of " + esc(c.commit_index) + ". " +
              (s.ready ? "<span class=ok>ready</span>" : "<span class=bad>not ready</span>") + "</p>" +
              (c.problems.length ? "<ul>" + c.problems.map(p => "<li class=bad>" + esc(p) + "</li>").join("") + "</ul>" : "");
            const q = s.queue;
            rows("queue", ["routing key", "pending", "dead"], [["<b>all</b>", esc(q.pending), esc(q.dead)]].concat(
              q.routing_keys.map(k => [esc(k.routing_key), esc(k.pending), esc(k.dead)])));
            chart(s.deliveries.series);
            rows("answers", ["status", "answers"], Object.entries(s.deliveries.upstream_answers).sort().map(([k, v]) => [esc(k), esc(v)]));
            rows("drills", ["#", "at", "kind", "leader", "accepted after", "delivered after", "canaries", "result"], s.drills.map(d => [
              esc(d.id), esc(when(d.started_at_ms)), d.hard ? "kill -9" : "handover", esc(d.from_leader) + " &rarr; " + (d.to_leader || "none"),
              esc(d.accepted_after_ms) + " ms", esc(d.delivered_after_ms) + " ms", esc(d.delivered) + "/" + esc(d.canaries) + (d.in_order ? " in order" : " <b>out of order</b>"),
              (d.passed ? "<span class=ok>pass</span>" : "<span class=bad>fail</span>") + " (objective " + esc(d.objective_ms) + " ms) " + esc(d.note)]));
            rows("recent", ["at", "problem"], s.recent_problems.map(p => [esc(when(p.at_ms)), "<code>" + esc(p.text) + "</code>"]));
          } catch (e) { $("error").textContent = "Cannot read /v1/status: " + e; }
          admin("/v1/queue/events?state=dead&limit=20", "dead", ["event", "routing key", "dedup key", "last error"],
            e => [esc(e.number), esc(e.routing_key), esc(e.dedup_key), "<code>" + esc(e.last_error) + "</code>"], j => j);
          admin("/v1/incidents?state=open,acknowledged&limit=20", "incidents", ["dedup key", "state", "severity", "summary"],
            f => [esc(f.dedup_key), esc(f.state), esc(f.severity), esc(f.summary)], j => j.incidents);
          admin("/v1/maintenance-windows", "windows", ["id", "state", "until", "covers", ""],
            w => [esc(w.id), esc(w.state), esc(w.end), esc((w.routing_keys || []).join(", ") + (w.source_pattern ? " " + w.source_pattern : "")),
                  w.state === "active" ? `<button onclick="endWindow(${Number(w.id)})">End</button>` : ""], j => j.windows);
        }
        async function act(method, path, body) {
          if (!token()) { const t = prompt("This action needs the admin token:"); if (!t) return; sessionStorage.setItem("pdrelay-admin-token", t); }
          const r = await fetch(path, {method, headers: Object.assign({"Content-Type": "application/json"}, headers()), body});
          if (!r.ok) alert(method + " " + path + ": HTTP " + r.status + " " + await r.text());
          refresh();
        }
        window.endWindow = id => act("DELETE", "/v1/maintenance-windows/" + id);
        $("retry").onclick = () => act("POST", "/v1/queue/retry", "{}");
        $("savetoken").onclick = () => { sessionStorage.setItem("pdrelay-admin-token", $("token").value); $("token").value = ""; refresh(); };
        refresh(); setInterval(refresh, 2000);
        </script></body></html>
        """
}
