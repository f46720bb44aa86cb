// The Node.js ssh2-sftp-client of rosterd's interop suite.
//
// Run by cmd/rosterd/interop_test.go (see ../gosftp/main.go for the step
// language) with the modules of package-lock.json here (npm ci). Logs in
// with EXPORT_KEY, accepts only a host key listed in EXPORT_KNOWN_HOSTS,
// and performs the steps on the command line: put (a read stream piped to
// a write stream), fastput (fastPut: concurrent writes), rename,
// posixrename (posixRename), append (append(): a handle opened with flag
// 'a'), resume (a write stream opened 'r+' at the remote size), chmod,
// mtime (the ssh2 SFTP session's utimes), get, ls.
'use strict';

const fs = require('fs');
const SftpClient = require('ssh2-sftp-client');

const env = process.env;

// knownKeys are the base64 key blobs of EXPORT_KNOWN_HOSTS.
const knownKeys = new Set(
  fs.readFileSync(env.EXPORT_KNOWN_HOSTS, 'utf8').split('\n')
    .map((line) => line.trim().split(/\s+/))
    .filter((f) => f.length >= 3 && !f[0].startsWith('#'))
    .map((f) => f[2]),
);

async function step(client, f) {
  switch (f[0]) {
    case 'ls': {
      const names = (await client.list(f[1])).map((e) => e.name).sort();
      console.log(`ls ${f[1]}: ${names.join(' ')}`);
      return;
    }
    case 'put':
      await client.put(f[1], f[2]);
      return;
    case 'fastput':
      await client.fastPut(f[1], f[2]);
      return;
    case 'append':
    case 'resume': {
      const size = (await client.stat(f[2])).size;
      const rest = fs.createReadStream(f[1], { start: size });
      if (f[0] === 'append') {
        await client.append(rest, f[2]);
      } else {
        await client.put(rest, f[2], { writeStreamOptions: { flags: 'r+', start: size } });
      }
      return;
    }
    case 'rename':
      await client.rename(f[1], f[2]);
      return;
    case 'posixrename':
      await client.posixRename(f[1], f[2]);
      return;
    case 'chmod':
      await client.chmod(f[2], parseInt(f[1], 8));
      return;
    case 'mtime': {
      const t = parseInt(f[1], 10);
      await new Promise((resolve, reject) => {
        client.sftp.utimes(f[2], t, t, (err) => (err ? reject(err) : resolve()));
      });
      return;
    }
    case 'get':
      await client.get(f[1], f[2]);
      return;
  }
  throw new Error(`unknown step ${f[0]}`);
}

async function main(steps) {
  const client = new SftpClient();
  await client.connect({
    host: env.EXPORT_HOST,
    port: parseInt(env.EXPORT_PORT, 10),
    username: env.EXPORT_USER,
    privateKey: fs.readFileSync(env.EXPORT_KEY),
    hostVerifier: (key) => knownKeys.has(key.toString('base64')),
    readyTimeout: 30000,
  });
  try {
    for (const s of steps) {
      const mustFail = s.startsWith('!');
      const body = mustFail ? s.slice(1) : s;
      try {
        await step(client, body.split(' '));
      } catch (e) {
        if (mustFail) {
          console.log(`refused ${body}: ${e.message}`);
          continue;
        }
        console.log(`error ${body}: ${e.message}`);
        return 1;
      }
      if (mustFail) {
        console.log(`error ${body}: succeeded; want a refusal`);
        return 1;
      }
      console.log(`ok ${body}`);
    }
  } finally {
    await client.end();
  }
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e) => {
    console.log(`error connect: ${e.message}`);
    process.exit(1);
  },
);
