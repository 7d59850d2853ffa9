# The HTML report is one self-contained file that headless Chromium renders
# (charts as inline SVG, tables, no network); -quiet prints nothing; a
# terminal run prints the summary.
. "$(dirname "$0")/lib.sh"

command -v chromium > /dev/null || fail "chromium is not installed (apt-get install chromium)"
PORT=$(free_port)
start_nginx "$PORT"

cat > "$T/s.lua" <<EOF2
target "http://127.0.0.1:$PORT"
scenario "shop" {
  flow = function(u)
    local r = u:get("/product/" .. u:random(1, 20), { name = "product" })
    u:check(r.status == 200, "product ok")
    u:get("/nope", { name = "missing" })
  end,
}
load { executor = "ramping-vus", stages = { { "1s", 6 }, { "1s", 6 } }, max_failed = 0.9 }   -- half are 404s
thresholds { ["product:p(95)"] = "< 500ms", error_rate = "< 60%" }
EOF2
out=$("$IAC" loadtest "$T/s.lua" -quiet -html "$T/report.html" -json "$T/report.json" 2>&1) || fail "run exited $?"
[ -z "$out" ] || fail "-quiet printed: $out"
[ -s "$T/report.html" ] || fail "no HTML report"

# self-contained: nothing to fetch
if grep -Eo '(src|href)=["'"'"'][^"'"'"']*' "$T/report.html" | grep -q .; then
	fail "the HTML report refers to external resources"
fi
grep -q '<link\|<script' "$T/report.html" && fail "the HTML report has links or scripts"

chrome() {
	timeout 90 chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
		--disable-background-networking --disable-component-update --disable-sync \
		--user-data-dir="$T/chromium-$1" "${@:2}" 2> "$T/chromium-$1.log"
}
chrome dom --dump-dom "file://$T/report.html" > "$T/dom.html" || fail "chromium could not load the report"
"$PY" - "$T/dom.html" <<'EOP'
import sys, re
dom = open(sys.argv[1]).read()
charts = re.findall(r"<svg[^>]*>", dom)
lines = re.findall(r"<polyline[^>]*points=\"([^\"]+)\"", dom)
assert len(charts) >= 4, f"expected at least 4 charts, found {len(charts)}"
assert len(lines) >= 4, f"expected lines in the charts, found {len(lines)}"
assert all(len(l.split()) >= 2 for l in lines[:1]), "the throughput line has no points"
for table in ("summary", "endpoints", "checks", "thresholds"):
    assert f'id="{table}"' in dom, f"table {table} missing"
assert "product ok" in dom and "missing" in dom
assert 'id="verdict"' in dom and ("Passed." in dom), "the verdict banner does not say the run passed"
assert "Latency of product" in dom and "Latency of missing" in dom, "a latency chart per endpoint is missing"
print(f"chromium rendered the report: {len(charts)} charts, {len(lines)} lines, 4 tables")
EOP
[ $? = 0 ] || fail "the rendered report lacks charts or tables"

chrome shot --window-size=1000,2200 --screenshot="$T/report.png" "file://$T/report.html" > /dev/null ||
	fail "chromium could not take a screenshot"
"$PY" - "$T/report.png" <<'EOP'
import sys, struct, zlib
data = open(sys.argv[1], "rb").read()
assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
w, h = struct.unpack(">II", data[16:24])
# decode the image (8-bit RGB/RGBA, no interlace) to count non-white pixels
pos, idat = 8, b""
color = data[25]
while pos < len(data):
    n = struct.unpack(">I", data[pos:pos + 4])[0]
    kind = data[pos + 4:pos + 8]
    if kind == b"IDAT":
        idat += data[pos + 8:pos + 8 + n]
    pos += 12 + n
raw = zlib.decompress(idat)
bpp = 4 if color == 6 else 3
stride = w * bpp
colored = 0
prev = bytearray(stride)
i = 0
for y in range(h):
    f = raw[i]; i += 1
    line = bytearray(raw[i:i + stride]); i += stride
    for x in range(stride):
        a = line[x - bpp] if x >= bpp else 0
        b = prev[x]
        c = prev[x - bpp] if x >= bpp else 0
        if f == 1: line[x] = (line[x] + a) & 255
        elif f == 2: line[x] = (line[x] + b) & 255
        elif f == 3: line[x] = (line[x] + ((a + b) >> 1)) & 255
        elif f == 4:
            p = a + b - c; pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
    prev = line
    if y % 4 == 0:
        for x in range(0, w, 4):
            px = line[x * bpp:x * bpp + 3]
            if px[0] < 200 or px[1] < 200 or px[2] < 200:
                colored += 1
assert colored > 2000, f"the screenshot is almost blank ({colored} coloured samples)"
print(f"screenshot {w}x{h}, {colored} coloured samples")
EOP
[ $? = 0 ] || fail "the screenshot of the report is blank"

# a normal run prints the summary on stdout
"$IAC" loadtest "$T/s.lua" > "$T/summary.txt" 2> "$T/stderr.txt" || fail "run exited $?"
for want in "requests" "latency" "product" "thresholds" "result:"; do
	grep -q "$want" "$T/summary.txt" || fail "summary lacks '$want'"
done
# no progress line when stderr is not a terminal
[ ! -s "$T/stderr.txt" ] || fail "unexpected output on stderr: $(cat "$T/stderr.txt")"
"$PY" "$(dirname "$0")/check_json_shape.py" "$T/report.json" || fail "JSON shape"
echo ok
