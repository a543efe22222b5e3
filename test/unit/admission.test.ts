import { describe, expect, it } from 'vitest';
import {
  Admission,
  isRefusal,
  type AdmissionTicket,
  type CapacityRefusal,
} from '../../src/realtime/admission.js';

const limits = { maxConnections: 3, maxConnectionsPerUser: 2, connectRatePerSecond: 100 };

function ticket(answer: AdmissionTicket | CapacityRefusal): AdmissionTicket {
  if (isRefusal(answer)) throw new Error(`refused: ${answer.code}`);
  return answer;
}

describe('admission tickets', () => {
  it('counts every ticket until its first release; later releases change nothing', () => {
    const admission = new Admission(limits);
    const [a, b, c] = ['a', 'b', 'c'].map((conn) => ticket(admission.admitNode(conn)));
    expect(admission.held).toBe(3);
    expect(admission.admitNode('d')).toEqual({ code: 'node_full', retryAfterMs: 1000 });
    a!.release();
    a!.release();
    expect(a!.released).toBe(true);
    expect(admission.held).toBe(2);
    const d = ticket(admission.admitNode('d'));
    expect(admission.held).toBe(3);
    for (const t of [b, c, d]) t!.release();
    expect(admission.held).toBe(0);
  });

  it("counts a user's tickets once admitted for the user; a refusal releases the ticket", () => {
    const refusals: string[] = [];
    const admission = new Admission({ ...limits, maxConnections: 10 }, (code, conn) =>
      refusals.push(`${conn}:${code}`),
    );
    const [a, b, c] = ['a', 'b', 'c'].map((conn) => ticket(admission.admitNode(conn)));
    expect(a!.admitUser('u')).toBeUndefined();
    expect(b!.admitUser('u')).toBeUndefined();
    expect(c!.admitUser('u')).toEqual({ code: 'too_many_user_connections' });
    expect(c!.released).toBe(true);
    expect(admission.held).toBe(2);
    expect(refusals).toEqual(['c:too_many_user_connections']);

    // Released twice, given back once: exactly one more ticket of the user fits.
    a!.release();
    a!.release();
    const d = ticket(admission.admitNode('d'));
    const e = ticket(admission.admitNode('e'));
    expect(d.admitUser('u')).toBeUndefined();
    expect(e.admitUser('u')).toEqual({ code: 'too_many_user_connections' });
    // No user (a hook that returns none): counted for the node only.
    const f = ticket(admission.admitNode('f'));
    expect(f.admitUser(undefined)).toBeUndefined();
    expect(admission.held).toBe(3);
  });

  it('one connect-rate bucket: each admitted ticket takes one token, refusals take none', () => {
    let now = 0;
    const admission = new Admission(
      { maxConnections: 2, maxConnectionsPerUser: 10, connectRatePerSecond: 2 },
      undefined,
      () => now,
    );
    const a = ticket(admission.admitNode('a'));
    ticket(admission.admitNode('b'));
    // Full: refused before the rate is looked at.
    expect(admission.admitNode('c')).toMatchObject({ code: 'node_full' });
    a.release();
    expect(admission.admitNode('c')).toEqual({ code: 'connect_rate_limited', retryAfterMs: 1000 });
    now += 500;
    ticket(admission.admitNode('c'));
  });
});
