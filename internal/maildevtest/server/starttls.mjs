// An SMTP server that offers STARTTLS and requires AUTH PLAIN after it (nodemailer's
// smtp-server, configured here and nothing more), for internal/maildevtest. Each
// message received is written whole to $SMTPTEST_DIR/<n>.eml. It prints its port on
// stdout, and exits when its stdin closes.
import fs from "node:fs";
import path from "node:path";
import { SMTPServer } from "smtp-server";

const dir = process.env.SMTPTEST_DIR;
let n = 0;
const server = new SMTPServer({
  key: fs.readFileSync(process.env.SMTPTEST_KEY),
  cert: fs.readFileSync(process.env.SMTPTEST_CERT),
  authMethods: ["PLAIN", "LOGIN"],
  logger: false,
  onAuth(auth, session, callback) {
    if (!session.secure) {
      return callback(new Error("Must issue a STARTTLS command first"));
    }
    if (auth.username !== process.env.SMTPTEST_USER || auth.password !== process.env.SMTPTEST_PASS) {
      return callback(new Error("Invalid username or password"));
    }
    callback(null, { user: auth.username });
  },
  onData(stream, session, callback) {
    const chunks = [];
    stream.on("data", (c) => chunks.push(c));
    stream.on("end", () => {
      n += 1;
      fs.writeFileSync(path.join(dir, `${n}.eml`), Buffer.concat(chunks));
      callback();
    });
  },
});
// A client that gives up a TLS handshake (an untrusted certificate) is no reason to stop.
server.on("error", (err) => process.stderr.write(`smtp-server: ${err.message}\n`));
server.listen(0, "127.0.0.1", () => {
  process.stdout.write(`${server.server.address().port}\n`);
});
process.stdin.on("end", () => process.exit(0));
process.stdin.resume();
