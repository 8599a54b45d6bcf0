// Node `ws` broadcast baseline for scripts/bench fanout: the row the reference figures list
// as "Node ws (clients.forEach(send))". Every message from any client goes to
// every open client, sender included (as the Beast baseline does), one send per
// delivery. Written the way ws's README shows broadcasting; do not optimise it.
//
// Usage: node bench/node_broadcast_server.js [--port P]   (P = 0 picks a free port)
// Prints "listening on 127.0.0.1:PORT" once it accepts connections.
'use strict';
const path = require('path');
const { WebSocketServer, WebSocket } = require(path.join(__dirname, '..', 'tests', 'node_modules', 'ws'));

const i = process.argv.indexOf('--port');
const port = i > 0 ? Number(process.argv[i + 1]) : 0;
const wss = new WebSocketServer({ host: '127.0.0.1', port, perMessageDeflate: false, maxPayload: 64 * 1024 * 1024 });
wss.on('listening', () => console.log(`listening on 127.0.0.1:${wss.address().port}`));
wss.on('connection', (ws) => {
  ws.on('error', () => {});
  ws.on('message', (data, isBinary) => {
    wss.clients.forEach((client) => {
      if (client.readyState === WebSocket.OPEN) client.send(data, { binary: isBinary });
    });
  });
});
process.on('SIGTERM', () => process.exit(0));
