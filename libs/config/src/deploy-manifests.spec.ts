import { describe, expect, it } from '@jest/globals';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import { SERVICES, SERVICE_NAMES, type ServiceName } from './services.js';

/*
 * deploy/ must agree with the service catalogue (services.ts) and with the metric names in
 * docs/CONVENTIONS.md. These tests read the manifests as data; promtool checks the alert rules.
 */

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const DEPLOY = join(ROOT, 'deploy');
const K8S = join(DEPLOY, 'k8s');
const VERSION = '0.1.0';

// ---- the slices of Kubernetes objects these tests read -----------------------------------------

interface Metadata { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> }
interface EnvVar { name: string; value?: string; valueFrom?: { secretKeyRef?: { name: string; key: string; optional?: boolean } } }
interface Probe { httpGet?: { path: string; port: number | string } }
interface ContainerPort { name?: string; containerPort: number }
interface Container {
  name: string;
  image: string;
  ports?: ContainerPort[];
  env?: EnvVar[];
  livenessProbe?: Probe;
  readinessProbe?: Probe;
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
  securityContext?: { runAsNonRoot?: boolean; readOnlyRootFilesystem?: boolean; allowPrivilegeEscalation?: boolean; capabilities?: { drop?: string[] } };
}
interface PodTemplate { metadata: Metadata; spec: { containers: Container[]; securityContext?: { runAsNonRoot?: boolean } } }
interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: Metadata;
  spec?: {
    replicas?: number;
    selector?: { matchLabels?: Record<string, string> } & Record<string, string>;
    template?: PodTemplate;
    ports?: { name: string; port: number; targetPort: number | string }[];
    scaleTargetRef?: { apiVersion: string; kind: string; name: string };
    minReplicas?: number;
    maxReplicas?: number;
    maxUnavailable?: number | string;
    minAvailable?: number | string;
    serviceName?: string;
  };
}
interface Kustomization { namespace?: string; resources?: string[] }

function walk(dir: string): string[] {
  return readdirSync(dir).flatMap((entry) => {
    const path = join(dir, entry);
    return statSync(path).isDirectory() ? walk(path) : [path];
  });
}

function readYamlDocuments(path: string): unknown[] {
  const docs = parseAllDocuments(readFileSync(path, 'utf8'));
  if (!Array.isArray(docs)) return [];
  for (const doc of docs) {
    if (doc.errors.length) throw new Error(`${relative(ROOT, path)}: ${doc.errors.map((e) => e.message).join('; ')}`);
  }
  return docs.map((d) => d.toJS() as unknown).filter((d) => d !== null && d !== undefined);
}

function readYaml<T>(path: string): T {
  const [doc] = readYamlDocuments(path);
  return doc as T;
}

/** Every Kubernetes object declared in one folder's kustomization (files only, not bases). */
function objectsOf(folder: string): K8sObject[] {
  const kustomization = readYaml<Kustomization>(join(folder, 'kustomization.yaml'));
  return (kustomization.resources ?? [])
    .filter((r) => r.endsWith('.yaml'))
    .flatMap((r) => readYamlDocuments(join(folder, r)) as K8sObject[]);
}

function find(objects: K8sObject[], kind: string, name: string): K8sObject {
  const found = objects.find((o) => o.kind === kind && o.metadata.name === name);
  if (!found) throw new Error(`no ${kind} named ${name}`);
  return found;
}

function envOf(container: Container): Map<string, EnvVar> {
  return new Map((container.env ?? []).map((e) => [e.name, e]));
}

function resolvePort(container: Container, port: number | string): number | undefined {
  if (typeof port === 'number') return port;
  return container.ports?.find((p) => p.name === port)?.containerPort;
}

function catalogue(service: ServiceName): { httpPort: number; grpcPort?: number } {
  return SERVICES[service] as { httpPort: number; grpcPort?: number };
}

// ---- metric names -------------------------------------------------------------------------------

/** The metric names docs/CONVENTIONS.md lists; a histogram contributes its _bucket/_sum/_count. */
function conventionMetricNames(): Set<string> {
  const doc = readFileSync(join(ROOT, 'docs', 'CONVENTIONS.md'), 'utf8');
  const names = new Set<string>();
  for (const m of doc.matchAll(/`(agentmesh_[a-z0-9_]+)(?:\{[^}`]*\})?`(\s*\(histogram\))?/g)) {
    const [, name, histogram] = m;
    if (histogram) for (const suffix of ['_bucket', '_sum', '_count']) names.add(name + suffix);
    else names.add(name);
  }
  return names;
}

const PROMQL_KEYWORDS = new Set(['and', 'or', 'unless', 'bool', 'by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'offset', 'inf', 'nan']);

/** The metric (and recording rule) names a PromQL expression selects. */
function metricNamesIn(expr: string): string[] {
  const s = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, '""')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ')
    .replace(/\boffset\s+-?\w+/g, ' ')
    .replace(/(?<![\w:])\d+(?:\.\d+)?(?:e[+-]?\d+)?/gi, ' ');
  const names: string[] = [];
  for (const m of s.matchAll(/[A-Za-z_:][\w:]*/g)) {
    const rest = s.slice((m.index ?? 0) + m[0].length).trimStart();
    if (rest.startsWith('(') || PROMQL_KEYWORDS.has(m[0].toLowerCase())) continue;
    names.push(m[0]);
  }
  return names;
}

// ---- promtool -----------------------------------------------------------------------------------

function promtool(args: string[]): { status: number | null; output: string } {
  const probe = spawnSync('promtool', ['--version'], { encoding: 'utf8' });
  if (probe.error) {
    throw new Error(
      "promtool is not installed: install Debian's prometheus package (apt-get install prometheus), " +
        'which provides /usr/bin/promtool. CI installs it, so these checks never skip.',
    );
  }
  const run = spawnSync('promtool', args, { cwd: join(DEPLOY, 'prometheus'), encoding: 'utf8', timeout: 120_000 });
  return { status: run.status, output: `${run.stdout ?? ''}${run.stderr ?? ''}` };
}

// ---- tests --------------------------------------------------------------------------------------

describe('deploy/ manifests', () => {
  it('parses every YAML file under deploy/ without errors', () => {
    const files = walk(DEPLOY).filter((f) => /\.ya?ml$/.test(f));
    expect(files.length).toBeGreaterThan(30);
    for (const file of files) expect(() => readYamlDocuments(file)).not.toThrow();
  });

  it('has a folder for exactly the catalogued services plus the NATS cluster', () => {
    const folders = readdirSync(K8S).filter((e) => statSync(join(K8S, e)).isDirectory()).sort();
    expect(folders).toEqual([...SERVICE_NAMES, 'nats'].sort());
  });

  it('lists the namespace and every folder in the top-level kustomization', () => {
    const top = readYaml<Kustomization>(join(K8S, 'kustomization.yaml'));
    expect(top.namespace).toBe('agentmesh');
    expect(new Set(top.resources)).toEqual(new Set(['namespace.yaml', 'nats', ...SERVICE_NAMES]));
  });

  it.each(SERVICE_NAMES)('%s deploys on its own: its kustomization names every manifest in its folder', (service) => {
    const folder = join(K8S, service);
    const kustomization = readYaml<Kustomization>(join(folder, 'kustomization.yaml'));
    expect(kustomization.namespace).toBe('agentmesh');
    const manifests = readdirSync(folder).filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml');
    expect(new Set(kustomization.resources)).toEqual(new Set(manifests));
    const kinds = objectsOf(folder).map((o) => `${o.kind}/${o.metadata.name}`).sort();
    expect(kinds).toEqual(
      [`Deployment/${service}`, `HorizontalPodAutoscaler/${service}`, `PodDisruptionBudget/${service}`, `Service/${service}`].sort(),
    );
  });

  it.each(SERVICE_NAMES)('%s Deployment runs its own image on the catalogue ports with probes, limits and a locked-down container', (service) => {
    const { httpPort, grpcPort } = catalogue(service);
    const deployment = find(objectsOf(join(K8S, service)), 'Deployment', service);
    const template = deployment.spec?.template;
    if (!template) throw new Error(`${service}: Deployment has no pod template`);
    expect(template.spec.containers).toHaveLength(1);
    const [container] = template.spec.containers;

    expect(container.image).toBe(`ghcr.io/agentmesh/${service}:${VERSION}`);

    const ports = Object.fromEntries((container.ports ?? []).map((p) => [p.name, p.containerPort]));
    expect(ports).toEqual(grpcPort === undefined ? { http: httpPort } : { http: httpPort, grpc: grpcPort });

    const env = envOf(container);
    expect(env.get('NATS_URL')?.value).toMatch(/^nats:\/\/nats\.agentmesh\.svc\.cluster\.local:4222$/);
    expect(env.get('NATS_USER')?.value).toBe(service);
    expect(env.get('NATS_PASSWORD')?.valueFrom?.secretKeyRef?.name).toBe(`agentmesh-nats-${service}`);
    expect(env.get('HOST')?.value).toBe('0.0.0.0');
    expect(env.get(`${service.toUpperCase().replace(/-/g, '_')}_PORT`)?.value).toBe(String(httpPort));
    if (grpcPort !== undefined) expect(env.get('GRPC_PORT')?.value).toBe(String(grpcPort));
    expect(env.get('AGENTMESH_STREAM_REPLICAS')?.value).toBe('3');

    expect(container.livenessProbe?.httpGet?.path).toBe('/healthz');
    expect(container.readinessProbe?.httpGet?.path).toBe('/readyz');
    expect(resolvePort(container, container.livenessProbe?.httpGet?.port ?? '')).toBe(httpPort);
    expect(resolvePort(container, container.readinessProbe?.httpGet?.port ?? '')).toBe(httpPort);

    for (const kind of ['requests', 'limits'] as const) {
      expect(container.resources?.[kind]?.cpu).toBeDefined();
      expect(container.resources?.[kind]?.memory).toBeDefined();
    }
    expect(template.spec.securityContext?.runAsNonRoot).toBe(true);
    expect(container.securityContext).toMatchObject({ runAsNonRoot: true, readOnlyRootFilesystem: true, allowPrivilegeEscalation: false });
    expect(container.securityContext?.capabilities?.drop).toContain('ALL');

    expect(template.metadata.annotations).toMatchObject({
      'prometheus.io/scrape': 'true',
      'prometheus.io/port': String(httpPort),
      'prometheus.io/path': '/metrics',
    });
    expect(template.metadata.labels).toMatchObject(deployment.spec?.selector?.matchLabels ?? { missing: 'selector' });
  });

  it.each(SERVICE_NAMES)('%s Service, HPA and PDB point at its pods and ports', (service) => {
    const { httpPort, grpcPort } = catalogue(service);
    const objects = objectsOf(join(K8S, service));
    const deployment = find(objects, 'Deployment', service);
    const podLabels = deployment.spec?.template?.metadata.labels ?? {};

    const svc = find(objects, 'Service', service);
    expect(podLabels).toMatchObject(svc.spec?.selector ?? { missing: 'selector' });
    const servicePorts = Object.fromEntries((svc.spec?.ports ?? []).map((p) => [p.name, p.port]));
    expect(servicePorts).toEqual(grpcPort === undefined ? { http: httpPort } : { http: httpPort, grpc: grpcPort });

    const hpa = find(objects, 'HorizontalPodAutoscaler', service);
    expect(hpa.apiVersion).toBe('autoscaling/v2');
    expect(hpa.spec?.scaleTargetRef).toEqual({ apiVersion: 'apps/v1', kind: 'Deployment', name: service });
    expect(hpa.spec?.minReplicas).toBeGreaterThanOrEqual(2);
    expect(hpa.spec?.maxReplicas).toBeGreaterThan(hpa.spec?.minReplicas ?? Infinity);
    // the HPA owns the replica count; a fixed one would be reset on every apply
    expect(deployment.spec?.replicas).toBeUndefined();

    const pdb = find(objects, 'PodDisruptionBudget', service);
    expect(pdb.apiVersion).toBe('policy/v1');
    expect(podLabels).toMatchObject(pdb.spec?.selector?.matchLabels ?? { missing: 'selector' });
    expect(pdb.spec?.maxUnavailable ?? pdb.spec?.minAvailable).toBeDefined();
  });

  it('runs NATS as a 3-node JetStream cluster that fsyncs every write and gives each service its own user', () => {
    const objects = objectsOf(join(K8S, 'nats'));
    const statefulSet = find(objects, 'StatefulSet', 'nats');
    expect(statefulSet.spec?.replicas).toBe(3);
    expect(statefulSet.spec?.serviceName).toBe('nats-headless');
    find(objects, 'Service', 'nats-headless');
    find(objects, 'PodDisruptionBudget', 'nats');

    const conf = readFileSync(join(DEPLOY, 'nats', 'nats-cluster.conf'), 'utf8');
    expect(conf).toMatch(/^\s*sync_interval:\s*always\s*$/m);
    for (let i = 0; i < 3; i++) expect(conf).toContain(`nats://nats-${i}.nats-headless.agentmesh.svc.cluster.local:6222`);
    for (const service of SERVICE_NAMES) {
      expect(conf).toMatch(new RegExp(`\\{\\s*user:\\s*${service},\\s*password:\\s*\\$\\w+,\\s*permissions:`));
      expect(conf).toContain(`"_INBOX_${service}.>"`);
    }
    // the ConfigMap is generated from the canonical file, never a copy of it
    const base = readYaml<{ configMapGenerator: { name: string; files: string[] }[] }>(join(DEPLOY, 'nats', 'kustomization.yaml'));
    expect(base.configMapGenerator[0].files).toEqual(['nats.conf=nats-cluster.conf']);
    expect(readYaml<Kustomization>(join(K8S, 'nats', 'kustomization.yaml')).resources).toContain('../../nats');
  });
});

interface Rule { alert?: string; record?: string; expr: string; for?: string; labels?: Record<string, string>; annotations?: Record<string, string> }
interface RuleFile { groups: { name: string; rules: Rule[] }[] }
interface RuleTestFile {
  rule_files: string[];
  tests: { name: string; alert_rule_test?: { alertname: string; exp_alerts: unknown[] }[] }[];
}

describe('deploy/prometheus', () => {
  const rules = readYaml<RuleFile>(join(DEPLOY, 'prometheus', 'alerts.yml')).groups.flatMap((g) => g.rules);
  const alerts = rules.filter((r) => r.alert !== undefined);
  const recorded = new Set(rules.flatMap((r) => (r.record ? [r.record] : [])));
  const known = new Set([...conventionMetricNames(), ...recorded, 'up']);

  it('reads metric names out of PromQL, ignoring labels, functions, ranges and numbers', () => {
    expect(metricNamesIn('max by (tenant) (a_total{le=~"1|1\\\\.0",x="y z"}[5m] offset 1h) / ignoring(x) b:c:rate5m > 14.4 * 0.01 and on (t) vector(1)')).toEqual([
      'a_total',
      'b:c:rate5m',
    ]);
  });

  it('finds the conventions metric list it checks names against', () => {
    expect(known).toContain('agentmesh_runs_finished_total');
    expect(known).toContain('agentmesh_step_duration_seconds_bucket');
    expect(known).not.toContain('agentmesh_step_duration_seconds');
  });

  it('uses only metric names that docs/CONVENTIONS.md lists (or its own recording rules) in every expr', () => {
    for (const rule of rules) {
      const names = metricNamesIn(rule.expr);
      expect(names.length).toBeGreaterThan(0);
      for (const name of names) expect({ rule: rule.alert ?? rule.record, name, known: known.has(name) }).toEqual({ rule: rule.alert ?? rule.record, name, known: true });
    }
  });

  it('defines the alerts operators rely on', () => {
    expect(alerts.map((a) => a.alert).sort()).toEqual(
      [
        'AgentmeshRunErrorBudgetFastBurn',
        'AgentmeshRunErrorBudgetSlowBurn',
        'AgentmeshStepLatencyBudgetFastBurn',
        'AgentmeshStepLatencyBudgetSlowBurn',
        'AgentmeshBudgetNearCap',
        'AgentmeshBudgetAtCap',
        'AgentmeshConsumerLagHigh',
        'AgentmeshInferenceReplicaDown',
        'AgentmeshApprovalBacklog',
        'AgentmeshServiceDown',
        'AgentmeshInstanceDown',
      ].sort(),
    );
  });

  it('gives every alert a severity, a summary, a description and a runbook', () => {
    for (const alert of alerts) {
      expect({ alert: alert.alert, severity: alert.labels?.severity }).toEqual({ alert: alert.alert, severity: expect.stringMatching(/^(critical|warning)$/) });
      for (const key of ['summary', 'description', 'runbook']) {
        expect({ alert: alert.alert, key, text: (alert.annotations?.[key] ?? '').length > 20 }).toEqual({ alert: alert.alert, key, text: true });
      }
    }
  });

  it('has a unit test where each alert fires and one where it stays silent', () => {
    const testFile = readYaml<RuleTestFile>(join(DEPLOY, 'prometheus', 'alerts.test.yml'));
    expect(testFile.rule_files).toEqual(['alerts.yml']);
    const cases = testFile.tests.flatMap((t) => t.alert_rule_test ?? []);
    for (const alert of alerts) {
      const mine = cases.filter((c) => c.alertname === alert.alert);
      expect({ alert: alert.alert, fires: mine.some((c) => c.exp_alerts.length > 0) }).toEqual({ alert: alert.alert, fires: true });
      expect({ alert: alert.alert, silent: mine.some((c) => c.exp_alerts.length === 0) }).toEqual({ alert: alert.alert, silent: true });
    }
  });

  it('passes promtool check rules', () => {
    const { status, output } = promtool(['check', 'rules', 'alerts.yml']);
    expect({ status, output }).toEqual({ status: 0, output: expect.stringContaining('SUCCESS') });
  });

  it('passes promtool test rules', () => {
    const { status, output } = promtool(['test', 'rules', 'alerts.test.yml']);
    expect({ status, output }).toEqual({ status: 0, output: expect.stringContaining('SUCCESS') });
  }, 120_000);

  // Debian's Prometheus is built without Kubernetes service discovery, so `promtool check config`
  // rejects kubernetes_sd_configs there; the scrape config is checked as data instead.
  it('loads alerts.yml and scrapes only pods that carry the prometheus.io annotations', () => {
    interface Relabel { source_labels?: string[]; regex?: string; action?: string; target_label?: string }
    const config = readYaml<{ rule_files: string[]; scrape_configs: { job_name: string; relabel_configs: Relabel[] }[] }>(
      join(DEPLOY, 'prometheus', 'prometheus.yml'),
    );
    expect(config.rule_files).toEqual(['alerts.yml']);
    const job = config.scrape_configs.find((c) => c.job_name === 'agentmesh');
    if (!job) throw new Error('no agentmesh scrape job');
    const sources = (r: Relabel) => (r.source_labels ?? []).join(',');
    expect(job.relabel_configs).toContainEqual(
      expect.objectContaining({ source_labels: ['__meta_kubernetes_pod_annotation_prometheus_io_scrape'], regex: 'true', action: 'keep' }),
    );
    expect(job.relabel_configs.some((r) => sources(r).includes('prometheus_io_port') && r.target_label === '__address__')).toBe(true);
    expect(job.relabel_configs.some((r) => sources(r).includes('prometheus_io_path') && r.target_label === '__metrics_path__')).toBe(true);
    // the alert rules group by `app`
    expect(job.relabel_configs.some((r) => r.target_label === 'app')).toBe(true);
  });
});

describe('deploy/grafana', () => {
  interface Panel { type: string; title: string; targets?: { expr: string }[] }
  const dashboard = JSON.parse(readFileSync(join(DEPLOY, 'grafana', 'agentmesh.json'), 'utf8')) as { uid: string; panels: Panel[] };
  const exprs = dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr));
  const rules = readYaml<RuleFile>(join(DEPLOY, 'prometheus', 'alerts.yml')).groups.flatMap((g) => g.rules);
  const known = new Set([...conventionMetricNames(), ...rules.flatMap((r) => (r.record ? [r.record] : [])), 'up']);

  it('queries only metric names that docs/CONVENTIONS.md lists', () => {
    expect(dashboard.uid).toBe('agentmesh-overview');
    for (const expr of exprs) {
      for (const name of metricNamesIn(expr)) expect({ expr, name, known: known.has(name) }).toEqual({ expr, name, known: true });
    }
  });

  it('shows runs, step latency, tools, LLM spend, budgets, replicas, consumer lag and approvals', () => {
    const used = new Set(exprs.flatMap(metricNamesIn));
    for (const name of [
      'agentmesh_runs_finished_total',
      'agentmesh_step_duration_seconds_bucket',
      'agentmesh_tool_calls_total',
      'agentmesh_llm_tokens_total',
      'agentmesh_llm_cost_usd_total',
      'agentmesh_budget_remaining_usd',
      'agentmesh_replica_load',
      'agentmesh_replica_up',
      'agentmesh_jetstream_consumer_pending',
      'agentmesh_approvals_pending',
    ]) {
      expect(used).toContain(name);
    }
  });
});
