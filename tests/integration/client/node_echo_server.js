// Node `ws` echo server: an independent peer for the client tests.
// Prints "listening on 127.0.0.1:PORT" once ready; echoes with the same opcode.
// With --deflate it offers permessage-deflate (compressing every message, so
// small ones are compressed too), and answers the text message "bytes-read?"
// with how many bytes it has read from the socket so far, so a test can see
// that what the client sent was actually compressed.
'use strict';
const path = require('path');
const { WebSocketServer } = require(path.join(__dirname, '..', '..', 'node_modules', 'ws'));

const deflate = process.argv.includes('--deflate');
const wss = new WebSocketServer({
  host: '127.0.0.1',
  port: 0,
  perMessageDeflate: deflate ? { threshold: 0 } : false,
  maxPayload: 64 * 1024 * 1024,
});
wss.on('listening', () => {
  console.log(`listening on 127.0.0.1:${wss.address().port}`);
});
wss.on('connection', (ws, request) => {
  ws.on('message', (data, isBinary) => {
    if (!isBinary && data.toString() === 'bytes-read?') {
      ws.send(String(request.socket.bytesRead));
      return;
    }
    ws.send(data, { binary: isBinary });
  });
});
process.on('SIGTERM', () => process.exit(0));
