// Places orders through the dashboard's back end, to watch the dashboard move:
//   npm run example:dashboard:load -- [orders per second] [seconds] [url]
const [rate = "20", seconds = "30", url = "http://localhost:3000"] = process.argv.slice(2);
const perSecond = Math.max(1, Number(rate));
const until = Date.now() + Number(seconds) * 1000;
let placed = 0;
let failed = 0;
while (Date.now() < until) {
  const started = Date.now();
  const batch = Array.from({ length: perSecond }, () =>
    fetch(`${url}/api/orders`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ userId: `customer-${Math.floor(Math.random() * 50)}`, total: Math.round(Math.random() * 20_000) / 100 + 1 }),
    }).then((r) => (r.ok ? placed++ : failed++), () => failed++),
  );
  await Promise.all(batch);
  process.stdout.write(`\rorders placed: ${placed}, failed: ${failed}`);
  await new Promise((r) => setTimeout(r, Math.max(0, 1000 - (Date.now() - started))));
}
process.stdout.write("\n");
