import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ServiceAccount, ConfigMap, Service, Secret } from 'kubernetes-models/v1';
import { Deployment } from 'kubernetes-models/apps/v1';
import { Ingress, NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1';
import { HorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2';
import { ServiceMonitor } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1';
import { parse } from 'yaml';
import { renderKustomization, type Manifest } from '../support/kustomize.js';
import { loadConfig } from '../../src/config/load.js';
import { configSchema } from '../../src/config/schema.js';

const models: Record<string, new (data: never) => { validate(): void }> = {
  'v1/ServiceAccount': ServiceAccount,
  'v1/ConfigMap': ConfigMap,
  'v1/Service': Service,
  'v1/Secret': Secret,
  'apps/v1/Deployment': Deployment,
  'networking.k8s.io/v1/Ingress': Ingress,
  'networking.k8s.io/v1/NetworkPolicy': NetworkPolicy,
  'policy/v1/PodDisruptionBudget': PodDisruptionBudget,
  'autoscaling/v2/HorizontalPodAutoscaler': HorizontalPodAutoscaler,
  'monitoring.coreos.com/v1/ServiceMonitor': ServiceMonitor,
};

interface Container {
  name: string;
  image: string;
  ports: Array<{ name: string; containerPort: number }>;
  env?: Array<{ name: string; value: string }>;
  readinessProbe: { httpGet: { path: string; port: string } };
  livenessProbe: { httpGet: { path: string; port: string } };
  startupProbe: { httpGet: { path: string; port: string } };
  lifecycle: { preStop: { exec: { command: string[] } } };
  securityContext: Record<string, unknown>;
  resources: { requests: Record<string, string>; limits: Record<string, string> };
}

const find = (docs: Manifest[], kind: string, name = 'pushcast'): Record<string, any> => {
  const doc = docs.find((d) => d.kind === kind && d.metadata.name === name);
  if (!doc) throw new Error(`no ${kind}/${name}`);
  return doc;
};

describe.each(['k8s/base', 'k8s/overlays/dev', 'k8s/overlays/prod', 'k8s/overlays/redis-cluster'])(
  'manifests %s',
  (dir) => {
    const docs = renderKustomization(dir);
    const deployment = find(docs, 'Deployment');
    const container = deployment.spec.template.spec.containers[0] as Container;
    const configMap = find(docs, 'ConfigMap').data as Record<string, string>;

    it('every object validates against the Kubernetes schemas', () => {
      expect(docs.length).toBeGreaterThanOrEqual(9);
      for (const doc of docs) {
        const Model = models[`${doc.apiVersion}/${doc.kind}`];
        expect(Model, `${doc.apiVersion}/${doc.kind} has a schema`).toBeDefined();
        expect(
          () => new Model!(doc as never).validate(),
          `${doc.kind}/${doc.metadata.name}`,
        ).not.toThrow();
      }
    });

    it('probes and ports match the server', () => {
      const http = container.ports.find((p) => p.name === 'http')!;
      expect(http.containerPort).toBe(configSchema.parse({}).port);
      expect(container.env?.find((e) => e.name === 'PORT')?.value).toBe(String(http.containerPort));
      expect(container.readinessProbe.httpGet).toEqual({ path: '/readyz', port: 'http' });
      expect(container.livenessProbe.httpGet).toEqual({ path: '/healthz', port: 'http' });
      expect(container.startupProbe.httpGet).toEqual({ path: '/healthz', port: 'http' });
      expect(find(docs, 'Service').spec.ports[0].targetPort).toBe('http');
      expect(find(docs, 'ServiceMonitor').spec.endpoints[0]).toMatchObject({
        port: 'http',
        path: '/metrics',
      });
      expect(find(docs, 'Ingress').spec.rules[0].http.paths[0].backend.service.port.name).toBe(
        'http',
      );
    });

    it('exposes only the public routes through the Ingress: sockets and the API', () => {
      const paths = (
        find(docs, 'Ingress').spec.rules as Array<{
          http: { paths: Array<{ path: string; pathType: string }> };
        }>
      ).flatMap((rule) => rule.http.paths);
      expect(paths.map((p) => [p.path, p.pathType])).toEqual([
        ['/socket.io/', 'Prefix'],
        ['/push_socket/', 'Prefix'],
        ['/api/', 'Prefix'],
      ]);
      const reachable = (route: string): boolean => paths.some((p) => route.startsWith(p.path));
      for (const inside of ['/metrics', '/admin', '/admin/', '/healthz', '/readyz'])
        expect(reachable(inside), inside).toBe(false);
      for (const outside of [
        '/socket.io/?EIO=4&transport=websocket',
        '/push_socket/websocket?vsn=2.0.0',
        '/api/push',
      ])
        expect(reachable(outside), outside).toBe(true);
    });

    it('rolls without losing capacity and with a grace period that covers the whole drain', () => {
      expect(deployment.spec.strategy).toMatchObject({
        type: 'RollingUpdate',
        rollingUpdate: { maxUnavailable: 0 },
      });
      const preStop = container.lifecycle.preStop.exec.command;
      expect(preStop[0]).toBe('sleep');
      const preStopS = Number(preStop[1]);
      const ms = (key: string) => Number(configMap[key]);
      const needS =
        preStopS +
        (ms('PUSHCAST_SHUTDOWN_DELAY_MS') +
          ms('PUSHCAST_DRAIN_TIMEOUT_MS') +
          ms('PUSHCAST_DISCONNECT_SPREAD_MS')) /
          1000;
      expect(configMap.PUSHCAST_DISCONNECT_ON_SHUTDOWN).toBe('true');
      // At least 3 s of margin for Redis to close and the process to exit.
      expect(deployment.spec.template.spec.terminationGracePeriodSeconds).toBeGreaterThanOrEqual(
        needS + 3,
      );
    });

    it('runs restricted: non-root, no privilege escalation, read-only root, no capabilities', () => {
      const pod = deployment.spec.template.spec;
      expect(pod.securityContext).toMatchObject({
        runAsNonRoot: true,
        seccompProfile: { type: 'RuntimeDefault' },
      });
      expect(container.securityContext).toMatchObject({
        allowPrivilegeEscalation: false,
        readOnlyRootFilesystem: true,
        capabilities: { drop: ['ALL'] },
      });
      expect(container.resources.requests.cpu).toBeDefined();
      expect(container.resources.limits.memory).toBeDefined();
    });

    it('its settings are accepted by the server (production, the dev overlay in development)', () => {
      // The Secret is created out of band in production: its example beside the overlay (the
      // redis-cluster one carries no REDIS_URL, which would clash with REDIS_CLUSTER_NODES).
      const secretDoc =
        docs.find((d) => d.kind === 'Secret') ??
        (dir === 'k8s/overlays/redis-cluster'
          ? (parse(readFileSync(`${dir}/secret.example.yaml`, 'utf8')) as Manifest)
          : renderKustomization('k8s/overlays/dev').find((d) => d.kind === 'Secret'));
      const stringData = (secretDoc as unknown as { stringData: Record<string, string> })
        .stringData;
      expect(Object.keys(stringData)).toEqual(
        expect.arrayContaining(['PUSHCAST_API_KEYS', 'PUSHCAST_JWT_SECRET']),
      );
      const env = {
        ...configMap,
        ...stringData,
        // The Secret's own values are public examples, which production refuses: real ones here.
        PUSHCAST_API_KEYS: randomBytes(24).toString('base64url'),
        PUSHCAST_JWT_SECRET: randomBytes(32).toString('base64url'),
        PORT: '4000',
      };
      const { config } = loadConfig(env, '/nonexistent');
      expect(config.env).toBe(dir === 'k8s/overlays/dev' ? 'development' : 'production');
      expect(config.shutdown.disconnect).toBe(true);
      if (dir === 'k8s/overlays/redis-cluster') expect(config.redisClusterNodes).toHaveLength(3);
    });
  },
);

describe('example secrets in the manifests', () => {
  const envOf = (dir: string): Record<string, string> => {
    const docs = renderKustomization(dir);
    const data = (
      docs.find((d) => d.kind === 'ConfigMap') as unknown as { data: Record<string, string> }
    ).data;
    const secret = renderKustomization('k8s/overlays/dev').find((d) => d.kind === 'Secret');
    return { ...data, ...(secret as unknown as { stringData: Record<string, string> }).stringData };
  };

  it('the dev overlay starts with its own example Secret as it is (development mode)', () => {
    const { config } = loadConfig(envOf('k8s/overlays/dev'), '/nonexistent');
    expect(config.env).toBe('development');
  });

  it('production refuses those example values, without echoing them', () => {
    const env = envOf('k8s/overlays/prod');
    expect(() => loadConfig(env, '/nonexistent')).toThrow(/PUSHCAST_API_KEYS|PUSHCAST_JWT_SECRET/);
    try {
      loadConfig(env, '/nonexistent');
    } catch (err) {
      for (const value of [env.PUSHCAST_API_KEYS!, env.PUSHCAST_JWT_SECRET!])
        expect((err as Error).message).not.toContain(value);
    }
  });
});

describe('the schema check itself', () => {
  it('rejects a broken object (so a passing check means something)', () => {
    const docs = renderKustomization('k8s/base');
    const broken = structuredClone(docs.find((d) => d.kind === 'Deployment')!) as any;
    broken.spec.template.spec.containers[0].ports[0].containerPort = 'http';
    expect(() => new Deployment(broken).validate()).toThrow(/containerPort/);
    const noSelector = structuredClone(docs.find((d) => d.kind === 'PodDisruptionBudget')!) as any;
    noSelector.spec.maxUnavailable = { nope: true };
    expect(() => new PodDisruptionBudget(noSelector).validate()).toThrow();
  });
});

describe('Dockerfile', () => {
  const text = readFileSync('Dockerfile', 'utf8');
  it('builds in one stage and runs node directly as a non-root user in another', () => {
    expect(text.match(/^FROM /gm)).toHaveLength(2);
    expect(text).toMatch(/^USER (?!root|0\b)\S+/m);
    expect(text).toMatch(/^CMD \["node", "dist\/main\.js"\]$/m);
    expect(text).toMatch(/npm run build/);
    // The build stage copies exactly what package.json's build script compiles.
    const pkg = JSON.parse(readFileSync('package.json', 'utf8')) as {
      scripts: Record<string, string>;
    };
    expect(pkg.scripts.build).toContain('tsconfig.build.json');
    expect(text).toContain('COPY tsconfig.json tsconfig.build.json ./');
  });
});
