package status

// templates are the pages, in html/template; one stylesheet in each page,
// no script.
const templates = `
{{define "head"}}<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{{.}}</title>
<style>
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left;vertical-align:top}
th{background:#f3f3f3}
td.num{text-align:right}
.ok{color:#176117}.warning{color:#8a5a00}.failure{color:#a40000;font-weight:bold}
.advice{font-style:italic}
</style></head><body>{{end}}

{{define "form"}}{{with .}}
<form method="post" action="diagnose">
<label>Local domain
{{if .Locals}}<select name="local">{{$l := .Local}}{{range .Locals}}<option{{if eq . $l}} selected{{end}}>{{.}}</option>{{end}}</select>
{{else}}<input name="local" value="{{.Local}}" required>{{end}}</label>
<label>Remote domain <input name="remote" value="{{.Remote}}" required></label>
<button type="submit">Diagnose</button>
</form>{{end}}{{end}}

{{define "index"}}{{template "head" "s2s status"}}
<h1>s2s status</h1>
<p>As of {{utc .Now}}.{{if .Metrics}} Metrics: <a href="metrics">metrics</a>.{{end}}</p>
<h2>Links</h2>
{{if not .Attached}}<p>No Manager attached.</p>
{{else if not .Links}}<p id="no-links">No authenticated links.</p>
{{else}}<table id="links">
<tr><th>direction</th><th>local</th><th>remote</th><th>TLS</th><th>cipher</th><th>auth</th><th>since</th><th>stream</th><th>XEP-0198</th><th>stanzas in</th><th>stanzas out</th><th>queued</th><th>unacked</th><th>resent</th></tr>
{{range .Links}}<tr><td>{{.Direction}}</td><td>{{.Local}}</td><td>{{.Remote}}</td><td>{{.TLS}}{{if .TLSResumed}}, resumed{{end}}</td><td>{{.Cipher}}</td><td>{{.Auth}}</td><td>{{utc .Since}} ({{ago $.Now .Since}})</td><td class="num">{{if .Stream}}{{.Stream}}{{end}}</td><td>{{if .StreamManagement}}on{{else}}off{{end}}</td><td class="num">{{.StanzasIn}}</td><td class="num">{{.StanzasOut}}</td><td class="num">{{.Queued}}</td><td class="num">{{.Unacked}}</td><td class="num">{{.StanzasResent}}</td></tr>
{{end}}</table>{{end}}
<h2>Latest failures</h2>
{{if not .Failures}}<p id="no-failures">None.</p>
{{else}}<table id="failures">
<tr><th>time</th><th>what</th><th>direction</th><th>local</th><th>remote</th><th>step</th><th>reason</th><th>times</th></tr>
{{range .Failures}}<tr><td>{{utc .Time}}</td><td>{{.Kind}}</td><td>{{.Direction}}</td><td>{{.Local}}</td><td>{{.Remote}}</td><td>{{if .Step}}{{.Step.Title}}{{end}}</td><td>{{.Reason}}</td><td class="num">{{.Count}}</td></tr>
{{end}}</table>{{end}}
{{if .Form}}<h2>Diagnose a domain</h2>{{template "form" .Form}}{{end}}
</body></html>{{end}}

{{define "diagnose"}}{{template "head" "s2s diagnosis"}}
<h1>s2s diagnosis</h1>
<p><a href="./">Back to the status page</a></p>
{{template "form" .Form}}
{{if .Error}}<p class="failure" id="error">{{.Error}}</p>{{end}}
{{with .Report}}
<h2 id="summary" class="{{if .CanFederate}}ok{{else}}failure{{end}}">{{.Summary}}</h2>
<table id="checks">
<tr><th>status</th><th>step</th><th>check</th><th>found</th><th>what to do</th></tr>
{{range .Checks}}<tr class="{{status .Status}}"><td>{{status .Status}}</td><td>{{.Step.Title}}</td><td>{{.Name}}</td><td>{{.Detail}}</td><td class="advice">{{.Advice}}</td></tr>
{{end}}</table>{{end}}
</body></html>{{end}}
`
