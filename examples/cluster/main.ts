// `npm run example:cluster`: three NATS servers, three Chorus nodes and HAProxy
// in front, on loopback, until Ctrl-C. Needs nats-server and haproxy installed,
// and the server built (npm run build).
import { startCluster } from "./cluster.js";

const cluster = await startCluster({ port: Number(process.env.PORT ?? 8080) });
console.log(`cluster: clients connect to ${cluster.url.replace("127.0.0.1", "localhost")} (HAProxy in front of ${cluster.chorus.map((c) => c.name).join(", ")}; NATS ${cluster.nats.map((n) => n.name).join(", ")})`);
const stop = () => void cluster.stop().then(() => process.exit(0));
process.on("SIGINT", stop);
process.on("SIGTERM", stop);
