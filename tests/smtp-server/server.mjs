// Samskab's test SMTP server. Arguments: --dir DIR (each accepted message is written there
// as <n>.eml, with <n>.json naming the envelope and whether TLS was on), optional
// --tls-key FILE --tls-cert FILE (offers STARTTLS; with --secure, TLS from the first byte
// instead, as smtps:// on port 465 does), --fail-first N (answers the first N
// messages with 451, a transient failure). Recipients starting with `reject` are refused
// with 550 (a permanent failure). Prints {"port": N} on stdout once listening on loopback.
import fs from 'node:fs';
import path from 'node:path';
import { SMTPServer } from 'smtp-server';

const args = process.argv.slice(2);
const arg = (name) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const dir = arg('--dir');
if (!dir) {
  console.error('--dir is required');
  process.exit(2);
}
const tlsKey = arg('--tls-key');
const tlsCert = arg('--tls-cert');
const secure = args.includes('--secure');
if (secure && !tlsKey) {
  console.error('--secure needs --tls-key and --tls-cert');
  process.exit(2);
}
let failFirst = Number(arg('--fail-first') || 0);
let accepted = 0;

const options = {
  secure,
  authOptional: true,
  logger: false,
  disabledCommands: tlsKey && !secure ? ['AUTH'] : ['AUTH', 'STARTTLS'],
  onRcptTo(address, session, callback) {
    if (address.address.startsWith('reject')) {
      const e = new Error('No such mailbox');
      e.responseCode = 550;
      return callback(e);
    }
    callback();
  },
  onData(stream, session, callback) {
    const chunks = [];
    stream.on('data', (c) => chunks.push(c));
    stream.on('end', () => {
      if (failFirst > 0) {
        failFirst -= 1;
        const e = new Error('Try again later');
        e.responseCode = 451;
        return callback(e);
      }
      accepted += 1;
      const base = path.join(dir, String(accepted).padStart(6, '0'));
      const meta = { secure: Boolean(session.secure), from: session.envelope.mailFrom.address, to: session.envelope.rcptTo.map((r) => r.address) };
      fs.writeFileSync(base + '.json', JSON.stringify(meta));
      fs.writeFileSync(base + '.tmp', Buffer.concat(chunks));
      fs.renameSync(base + '.tmp', base + '.eml');
      callback();
    });
  },
};
if (tlsKey) {
  options.key = fs.readFileSync(tlsKey);
  options.cert = fs.readFileSync(tlsCert);
}
const server = new SMTPServer(options);
server.on('error', (e) => console.error('smtp-server:', e.message));
server.listen(0, '127.0.0.1', () => {
  console.log(JSON.stringify({ port: server.server.address().port }));
});
// The test holds stdin: when it goes away, so does the server.
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
