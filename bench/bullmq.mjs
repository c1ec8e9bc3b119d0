// BullMQ 5's queue path on the same machine as `testamur bench queue`
// (bench/bullmq.sh runs both): N no-op jobs added with addBulk in chunks of
// 1,000, then drained by one worker process with concurrency 50 and
// removeOnComplete. Prints the enqueue and drain rates and Redis CPU per job.
import { Queue, Worker } from 'bullmq';
import IORedis from 'ioredis';

const port = Number(process.env.REDIS_PORT);
const n = Number(process.env.N || 20000);
const connection = { host: '127.0.0.1', port, maxRetriesPerRequest: null };

async function redisCpu(r) {
  const info = await r.info('cpu');
  const field = (k) => Number((info.match(new RegExp(`${k}:([0-9.]+)`)) || [0, 0])[1]);
  return field('used_cpu_user') + field('used_cpu_sys');
}

const admin = new IORedis(connection);
const queue = new Queue('bench', { connection });
await queue.obliterate({ force: true }).catch(() => {});
const cpu0 = await redisCpu(admin);
let t = process.hrtime.bigint();
for (let i = 0; i < n; i += 1000) {
  const jobs = [];
  for (let j = i; j < Math.min(n, i + 1000); j++) {
    jobs.push({ name: 'cert', data: { i: j }, opts: { removeOnComplete: true } });
  }
  await queue.addBulk(jobs);
}
const enqueueS = Number(process.hrtime.bigint() - t) / 1e9;
const cpu1 = await redisCpu(admin);

let done = 0;
t = process.hrtime.bigint();
await new Promise((resolve) => {
  const worker = new Worker('bench', async () => {}, { connection, concurrency: 50 });
  worker.on('completed', () => {
    if (++done === n) worker.close().then(resolve);
  });
});
const drainS = Number(process.hrtime.bigint() - t) / 1e9;
const cpu2 = await redisCpu(admin);
console.log(`bullmq: ${n} no-op jobs, 1 worker x concurrency 50`);
console.log(`  enqueue (addBulk of 1000): ${enqueueS.toFixed(2)}s -> ${(n / enqueueS).toFixed(0)} jobs/s, Redis CPU ${((cpu1 - cpu0) * 1e6 / n).toFixed(1)} µs/job`);
console.log(`  drain: ${drainS.toFixed(2)}s -> ${(n / drainS).toFixed(0)} jobs/s, Redis CPU ${((cpu2 - cpu1) * 1e6 / n).toFixed(1)} µs/job`);
await queue.close();
await admin.quit();
