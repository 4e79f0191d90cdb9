// Peer: Socket.IO, set up the way its users run it (websocket transport,
// rooms, broadcast with io.to(room).emit, acknowledgements for publishers).
import { createServer } from "node:http";
import { Server } from "socket.io";

const http = createServer();
const io = new Server(http, { transports: ["websocket"], serveClient: false, maxHttpBufferSize: 1e6 });
io.on("connection", (socket) => {
  socket.on("sub", (topic: string, ack?: () => void) => {
    void socket.join(topic);
    ack?.();
  });
  socket.on("pub", (topic: string, data: string, ack?: () => void) => {
    io.to(topic).emit("m", data);
    ack?.();
  });
});
http.listen(Number(process.env.PORT ?? 0), "127.0.0.1", () => {
  const { port } = http.address() as { port: number };
  console.log(`socket.io listening on http://127.0.0.1:${port}`);
});
process.on("SIGTERM", () => process.exit(0));
