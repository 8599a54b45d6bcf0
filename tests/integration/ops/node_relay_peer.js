// Relay test peer: joins the room at argv[2], prints the first message it gets,
// answers it with "ack:<message>" and closes. Bounded: exits 3 after 20 s.
const WebSocket = require('ws');
const ws = new WebSocket(process.argv[2]);
ws.on('open', () => console.log(JSON.stringify({open: true})));
ws.on('message', (data) => {
  console.log(JSON.stringify({got: data.toString()}));
  ws.send('ack:' + data.toString());
  ws.close();
});
ws.on('close', () => process.exit(0));
ws.on('error', (e) => { console.error(String(e)); process.exit(2); });
setTimeout(() => process.exit(3), 20000);
