//! Helm charts and Kustomize directories as sources: for every cluster,
//! Tidegate's objects equal what the real `helm template` / `kustomize build`
//! print for the same inputs (once Tidegate's own additions are taken off),
//! charts come from a Helm repository over HTTPS and an OCI registry and are
//! verified by digest, and an unchanged commit is rendered from the cache.

use crate::pipeline::render_env;
use serde_json::Value;
use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::Command,
};
use tidegate_render::Rendered;
use tidegate_template::{Templater, Tool, default_cache_dir};
use tidegate_tests::{GitFixture, workspace_root};

/// The tools, built by `make template-tools`.
pub(crate) fn tool(tool: Tool) -> PathBuf {
    tool.locate(&default_cache_dir())
        .unwrap_or_else(|| panic!("{}", tool.install_help(&default_cache_dir())))
}

/// Runs a tool and returns its standard output.
pub(crate) fn run(program: &Path, args: &[&str], cwd: &Path) -> String {
    let home = tempfile::tempdir().expect("home");
    let out = Command::new(program)
        .args(args)
        .current_dir(cwd)
        .env("HOME", home.path())
        .env("HELM_CACHE_HOME", home.path().join("cache"))
        .env("HELM_CONFIG_HOME", home.path().join("config"))
        .env("HELM_DATA_HOME", home.path().join("data"))
        .output()
        .expect("run tool");
    assert!(
        out.status.success(),
        "{} {args:?}: {}",
        program.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

/// The objects of a YAML stream, keyed by kind and name.
pub(crate) fn objects(text: &str) -> BTreeMap<(String, String), Value> {
    tidegate_render::yaml::parse_documents(text.as_bytes(), "output")
        .expect("yaml")
        .into_iter()
        .map(|d| d.root.to_json())
        .filter(|v| v.is_object())
        .map(|v| {
            let key = (
                v["kind"].as_str().unwrap_or_default().to_string(),
                v["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            );
            (key, v)
        })
        .collect()
}

/// One cluster's objects of one app, with what Tidegate adds taken off: the
/// tracking labels and annotation, and the app's namespace.
pub(crate) fn tidegate_objects(
    rendered: &Rendered,
    cluster: &str,
    app: &str,
) -> BTreeMap<(String, String), Value> {
    let app = rendered
        .clusters
        .iter()
        .find(|c| c.cluster == cluster)
        .and_then(|c| c.apps.iter().find(|a| a.app == app))
        .unwrap_or_else(|| panic!("{cluster}/{app} rendered"));
    app.objects
        .iter()
        .map(|o| {
            let mut v = (*o.manifest).clone();
            let meta = v["metadata"].as_object_mut().expect("metadata");
            meta.remove("namespace");
            for (field, key) in [
                ("labels", "app.kubernetes.io/managed-by"),
                ("labels", "tidegate.dev/environment"),
                ("annotations", "tidegate.dev/tracking-id"),
            ] {
                if let Some(map) = meta.get_mut(field).and_then(Value::as_object_mut) {
                    map.remove(key);
                    if map.is_empty() {
                        meta.remove(field);
                    }
                }
            }
            ((o.key.kind.clone(), o.key.name.clone()), v)
        })
        .collect()
}

const CLUSTERS: &str = r#"  clusters:
    - name: eks
      provider: {kubeconfig: {context: eks}}
      labels: {cloud: aws}
    - name: aks
      provider: {kubeconfig: {context: aks}}
      labels: {cloud: azure}
    - name: gke
      provider: {kubeconfig: {context: gke}}
      labels: {cloud: gcp}
"#;

fn environment(apps: &str) -> String {
    format!(
        "apiVersion: tidegate.dev/v1alpha1\nkind: Environment\nmetadata:\n  name: test\nspec:\n  source:\n    repoURL: .\n    path: manifests\n{CLUSTERS}  apps:\n{apps}"
    )
}

/// The fixture chart as a Helm app with values per cluster and a Tidegate
/// replica override on top.
const WEB_APP: &str = r#"    - name: web
      namespace: web
      helm:
        valueFiles: [values-prod.yaml]
        values: {image: {tag: "1.1.0"}}
        skipTests: true
        kubeVersion: "1.36.0"
      overlays:
        - clusterSelector: {matchLabels: {cloud: aws}}
          helm: {values: {region: us-east-1}}
        - clusterSelector: {matchLabels: {cloud: azure}}
          helm: {values: {region: westeurope}, kubeVersion: "1.37.0"}
        - clusterSelector: {matchLabels: {cloud: gcp}}
          helm: {values: {region: us-central1}, apiVersions: [monitoring.coreos.com/v1]}
        - replicas: [{name: web, count: 4}]
"#;

fn chart_repo(apps: &str) -> GitFixture {
    let mut fx = GitFixture::new();
    fx.copy_dir(
        &workspace_root().join("tests/data/charts/web"),
        "manifests/web",
    )
    .write(
        "manifests/web/values-prod.yaml",
        "replicaCount: 2\nlogLevel: warn\n",
    )
    .write("environments/test.yaml", environment(apps));
    fx.commit("a Helm app");
    fx
}

#[test]
fn helm_chart_renders_like_helm_template_for_every_cluster() {
    let fx = chart_repo(WEB_APP);
    let rendered = render_env(fx.path(), "test").unwrap_or_else(|d| panic!("{d}"));
    let helm = tool(Tool::Helm);
    let chart = fx.path().join("manifests/web");
    for (cluster, extra) in [
        (
            "eks",
            vec!["--set", "region=us-east-1", "--kube-version", "1.36.0"],
        ),
        (
            "aks",
            vec!["--set", "region=westeurope", "--kube-version", "1.37.0"],
        ),
        (
            "gke",
            vec![
                "--set",
                "region=us-central1",
                "--kube-version",
                "1.36.0",
                "--api-versions",
                "monitoring.coreos.com/v1",
            ],
        ),
    ] {
        let mut args = vec![
            "template",
            "web",
            chart.to_str().expect("path"),
            "--namespace",
            "web",
            "--include-crds",
            "--skip-tests",
            "--values",
            "values-prod.yaml",
            "--set",
            "image.tag=1.1.0",
        ];
        args.extend(extra);
        let mut expected = objects(&run(&helm, &args, &chart));
        // Tidegate's own overlay, after Helm.
        let deployment = expected
            .get_mut(&("Deployment".into(), "web".into()))
            .expect("the chart's Deployment");
        assert_eq!(deployment["spec"]["replicas"], 2, "values-prod.yaml");
        deployment["spec"]["replicas"] = 4.into();
        let actual = tidegate_objects(&rendered, cluster, "web");
        assert_eq!(
            actual.keys().collect::<Vec<_>>(),
            expected.keys().collect::<Vec<_>>(),
            "{cluster}"
        );
        for (key, want) in &expected {
            assert_eq!(&actual[key], want, "{cluster}: {key:?}");
        }
        // The chart's dependency, its CRD, and no test hook.
        assert!(actual.contains_key(&("Service".into(), "web-cache".into())));
        assert!(actual.contains_key(&(
            "CustomResourceDefinition".into(),
            "widgets.fixtures.tidegate.dev".into()
        )));
        assert!(!actual.contains_key(&("Pod".into(), "web-test".into())));
    }
    let config = |cluster: &str| {
        tidegate_objects(&rendered, cluster, "web")[&("ConfigMap".into(), "web-config".into())]["data"].clone()
    };
    assert_eq!(config("eks")["REGION"], "us-east-1");
    assert_eq!(config("aks")["REGION"], "westeurope");
    assert_eq!(config("aks")["KUBE_VERSION"], "v1.37.0");
    assert_eq!(config("gke")["METRICS"], "servicemonitor");
    assert_eq!(config("eks")["LOG_LEVEL"], "warn");
    // The pre-install hook goes first; the rest in Tidegate's apply order.
    let eks = &rendered.clusters[0].apps[0].objects;
    assert_eq!(eks[0].key.name, "web-schema", "pre-install hook first");
    assert_eq!(eks[1].key.kind, "CustomResourceDefinition");
    // Provenance names the chart's template.
    let deployment = eks
        .iter()
        .find(|o| o.key.kind == "Deployment")
        .expect("deployment");
    assert_eq!(
        deployment.provenance.path,
        "manifests/web/templates/deployment.yaml"
    );
}

#[test]
fn kustomize_overlay_renders_like_kustomize_build() {
    let mut fx = GitFixture::new();
    fx.copy_dir(
        &workspace_root().join("tests/data/kustomize/shop"),
        "manifests/shop",
    )
    .write(
        "environments/test.yaml",
        environment(
            r#"    - name: shop
      path: shop/overlays/prod
      namespace: shop
      kustomize: {}
      overlays:
        - clusterSelector: {matchLabels: {cloud: azure}}
          images: [{name: ghcr.io/example/shop, newTag: "1.2.0"}]
"#,
        ),
    );
    fx.commit("a Kustomize app");
    let rendered = render_env(fx.path(), "test").unwrap_or_else(|d| panic!("{d}"));
    let built = run(
        &tool(Tool::Kustomize),
        &["build", "manifests/shop/overlays/prod"],
        fx.path(),
    );
    for cluster in ["eks", "aks", "gke"] {
        let mut expected = objects(&built);
        let actual = tidegate_objects(&rendered, cluster, "shop");
        // Base + overlay + component: prefix, replicas, image, merged config.
        let deployment = expected
            .get_mut(&("Deployment".into(), "prod-shop".into()))
            .expect("the overlay's Deployment");
        assert_eq!(deployment["spec"]["replicas"], 2);
        let image = &mut deployment["spec"]["template"]["spec"]["containers"][0]["image"];
        assert_eq!(*image, "ghcr.io/example/shop:1.1.0");
        if cluster == "aks" {
            *image = "ghcr.io/example/shop:1.2.0".into();
        }
        assert_eq!(actual, expected, "{cluster}");
        let config = actual
            .iter()
            .find(|((kind, name), _)| kind == "ConfigMap" && name.starts_with("prod-shop-config-"))
            .map(|(_, v)| v.clone())
            .expect("generated ConfigMap");
        assert_eq!(config["data"]["LOG_LEVEL"], "debug", "the component");
    }
}

/// `<dir>/helm/<version>/bin/helm`: a wrapper that counts its runs.
fn counting_helm(dir: &Path) -> PathBuf {
    let bin = Tool::Helm.cached_path(dir);
    std::fs::create_dir_all(bin.parent().expect("bin dir")).expect("mkdir");
    let count = dir.join("runs");
    std::fs::write(
        &bin,
        format!(
            "#!/bin/sh\necho run >> {}\nexec {} \"$@\"\n",
            count.display(),
            tool(Tool::Helm).display()
        ),
    )
    .expect("write wrapper");
    let mut perms = std::fs::metadata(&bin).expect("stat").permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&bin, perms).expect("chmod");
    count
}

fn runs(count: &Path) -> usize {
    std::fs::read_to_string(count).map_or(0, |s| s.lines().count())
}

/// Loads the environment and expands it with `templater`.
fn expand(fx: &GitFixture, templater: &Templater) -> Result<Rendered, tidegate_core::Diagnostics> {
    crate::pipeline::load_with(fx.path(), "test", "HEAD", templater).map(|(_, r)| r)
}

#[test]
fn an_unchanged_commit_renders_from_the_cache_and_a_change_renders_again() {
    let mut fx = chart_repo(WEB_APP);
    let dir = tempfile::tempdir().expect("dir");
    let count = counting_helm(dir.path());
    let templater =
        Templater::new(dir.path().join("cache")).with_tools_dir(dir.path().to_path_buf());
    let first = expand(&fx, &templater).unwrap_or_else(|d| panic!("{d}"));
    // Three clusters, three different sets of values: three runs.
    assert_eq!(runs(&count), 3);
    let again = expand(&fx, &templater).unwrap_or_else(|d| panic!("{d}"));
    assert_eq!(runs(&count), 3, "nothing ran for the unchanged commit");
    assert_eq!(
        serde_json::to_value(&first.clusters).expect("json"),
        serde_json::to_value(&again.clusters).expect("json")
    );
    // A commit that changes the chart renders again.
    fx.write(
        "manifests/web/values-prod.yaml",
        "replicaCount: 3\nlogLevel: warn\n",
    );
    fx.commit("more replicas");
    expand(&fx, &templater).unwrap_or_else(|d| panic!("{d}"));
    assert_eq!(runs(&count), 6);
    // Clusters with equal inputs share one run.
    let mut same = GitFixture::new();
    same.copy_dir(
        &workspace_root().join("tests/data/charts/web"),
        "manifests/web",
    )
    .write(
        "environments/test.yaml",
        environment("    - name: web\n      namespace: web\n      helm: {skipTests: true}\n"),
    );
    same.commit("one set of values");
    expand(&same, &templater).unwrap_or_else(|d| panic!("{d}"));
    assert_eq!(runs(&count), 7);
}

#[test]
fn every_templated_app_is_tried_and_all_problems_come_back_together() {
    let mut fx = GitFixture::new();
    fx.copy_dir(
        &workspace_root().join("tests/data/charts/web"),
        "manifests/web",
    )
    .copy_dir(
        &workspace_root().join("tests/data/kustomize/shop"),
        "manifests/shop",
    )
    .write(
        "manifests/plain/cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: plain\ndata:\n  ON: yes\n",
    )
    .write(
        "environments/test.yaml",
        environment(
            r#"    - name: web
      namespace: web
      helm: {valueFiles: [nope.yaml], skipTests: true}
    - name: shop
      path: shop/overlays/prod
      kustomize: {}
      overlays:
        - images: [{name: not-in-the-output, newTag: "1"}]
    - name: plain
"#,
        ),
    );
    fx.commit("three problems");
    let problems = render_env(fx.path(), "test")
        .expect_err("invalid")
        .to_string();
    assert!(
        problems.contains("environments/test.yaml:20: app web: values file \"nope.yaml\""),
        "{problems}"
    );
    assert!(
        problems.contains("app shop: image override \"not-in-the-output\" matches nothing"),
        "{problems}"
    );
    assert!(problems.contains("manifests/plain/cm.yaml:6"), "{problems}");
}

/// A CA and a certificate for 127.0.0.1 signed by it, as files.
struct TestPki {
    dir: tempfile::TempDir,
    ca_pem: String,
}

impl TestPki {
    fn new() -> TestPki {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
        let mut ca = CertificateParams::new(Vec::<String>::new()).expect("ca params");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_key = KeyPair::generate().expect("ca key");
        let ca_cert = ca.self_signed(&ca_key).expect("ca");
        let leaf = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
            .expect("leaf params");
        let leaf_key = KeyPair::generate().expect("leaf key");
        let leaf_cert = leaf
            .signed_by(&leaf_key, &Issuer::from_params(&ca, &ca_key))
            .expect("leaf");
        let dir = tempfile::tempdir().expect("pki dir");
        std::fs::write(dir.path().join("ca.pem"), ca_cert.pem()).expect("ca.pem");
        std::fs::write(dir.path().join("tls.crt"), leaf_cert.pem()).expect("tls.crt");
        std::fs::write(dir.path().join("tls.key"), leaf_key.serialize_pem()).expect("tls.key");
        TestPki {
            ca_pem: ca_cert.pem(),
            dir,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// The fixture chart packaged by `helm package`: its path and bytes.
fn packaged_chart(dir: &Path) -> (PathBuf, Vec<u8>) {
    let chart = workspace_root().join("tests/data/charts/web");
    run(
        &tool(Tool::Helm),
        &[
            "package",
            chart.to_str().expect("path"),
            "-d",
            dir.to_str().expect("path"),
        ],
        dir,
    );
    let tgz = dir.join("web-0.1.0.tgz");
    let bytes = std::fs::read(&tgz).expect("packaged chart");
    (tgz, bytes)
}

/// What `helm template` prints for the packaged chart in `namespace`.
fn packaged_objects(tgz: &Path, namespace: &str) -> BTreeMap<(String, String), Value> {
    let dir = tgz.parent().expect("packages dir");
    let tgz = tgz.to_str().expect("path");
    let args = [
        "template",
        "web",
        tgz,
        "--namespace",
        namespace,
        "--skip-tests",
    ];
    objects(&run(&tool(Tool::Helm), &args, dir))
}

/// Renders the repository's `test` environment trusting the test CA, with a
/// fresh chart and output cache.
fn expand_trusting(fx: &GitFixture, pki: &TestPki, cache: &Path) -> Result<Rendered, String> {
    let templater = Templater::from_env()
        .with_cache_dir(cache.to_path_buf())
        .with_trusted_ca(pki.ca_pem.as_bytes());
    expand(fx, &templater).map_err(|d| d.to_string())
}

/// A published chart as an app (`extra` adds fields under `helm:`).
fn remote_app(name: &str, repo_url: &str, chart: &str, extra: &str) -> String {
    format!(
        "    - name: {name}\n      namespace: {name}\n      helm:\n        repoURL: {repo_url}\n        chart: {chart}\n        version: 0.1.0\n        releaseName: web\n        skipTests: true\n        includeCRDs: false\n{extra}"
    )
}

const WRONG_DIGEST: &str =
    "sha256:0000000000000000000000000000000000000000000000000000000000000000";

#[test]
fn charts_from_a_helm_repository_over_https_are_fetched_and_verified_by_digest() {
    use tidegate_testkit::http::{Response, serve_stub_tls};
    let pki = TestPki::new();
    let packages = tempfile::tempdir().expect("packages");
    let (tgz, bytes) = packaged_chart(packages.path());
    let digest = tidegate_template::sha256_digest(&bytes);
    let hex = digest.trim_start_matches("sha256:").to_string();
    let index = |url: &str| {
        format!(
            "apiVersion: v1\nentries:\n  web:\n    - name: web\n      version: 0.1.0\n      digest: {hex}\n      urls: [{url}]\n"
        )
    };
    let (good, tampered) = (index("charts/web-0.1.0.tgz"), index("charts/other.tgz"));
    let server = serve_stub_tls(&pki.path("tls.crt"), &pki.path("tls.key"), move |request| {
        let body = |b: Vec<u8>| Response {
            status: 200,
            content_type: "application/octet-stream".into(),
            body: b,
        };
        match request.path() {
            "/stable/index.yaml" => body(good.clone().into_bytes()),
            "/tampered/index.yaml" => body(tampered.clone().into_bytes()),
            "/stable/charts/web-0.1.0.tgz" => body(bytes.clone()),
            "/tampered/charts/other.tgz" => body(b"not the chart".to_vec()),
            _ => Response::text(404, "not found"),
        }
    })
    .expect("stub Helm repository");
    let stable = format!("{}/stable", server.url());
    // The repository's chart, as is and with its digest pinned.
    let mut fx = GitFixture::new();
    fx.write(
        "environments/test.yaml",
        environment(&format!(
            "{}{}",
            remote_app("a", &stable, "web", ""),
            remote_app("b", &stable, "web", &format!("        digest: {digest}\n"))
        )),
    );
    fx.commit("charts from a Helm repository");
    let cache = tempfile::tempdir().expect("cache");
    let rendered = expand_trusting(&fx, &pki, cache.path()).unwrap_or_else(|e| panic!("{e}"));
    let expected = packaged_objects(&tgz, "a");
    assert_eq!(tidegate_objects(&rendered, "eks", "a"), expected);
    assert_eq!(tidegate_objects(&rendered, "gke", "b"), expected);
    let deployment = rendered.clusters[0].apps[0]
        .objects
        .iter()
        .find(|o| o.key.kind == "Deployment")
        .expect("deployment");
    assert_eq!(
        deployment.provenance.path,
        "web-0.1.0.tgz/templates/deployment.yaml"
    );

    // A wrong pin, a chart the repository does not have, a download that
    // does not match the index: each refused at its app's line, together.
    let mut bad = GitFixture::new();
    bad.write(
        "environments/test.yaml",
        environment(&format!(
            "{}{}{}",
            remote_app(
                "a",
                &stable,
                "web",
                &format!("        digest: {WRONG_DIGEST}\n")
            ),
            remote_app("b", &stable, "nope", ""),
            remote_app("c", &format!("{}/tampered", server.url()), "web", ""),
        )),
    );
    bad.commit("bad charts");
    let problems = expand_trusting(&bad, &pki, cache.path()).expect_err("refused");
    assert!(
        problems.contains(&format!("environments/test.yaml:20: app a: chart web 0.1.0 from {stable}: index.yaml gives digest {digest} for web 0.1.0, but the environment pins {WRONG_DIGEST}")),
        "{problems}"
    );
    assert!(
        problems.contains(&format!("environments/test.yaml:30: app b: chart nope 0.1.0 from {stable}: the Helm repository {stable} has no chart \"nope\"")),
        "{problems}"
    );
    assert!(
        problems.contains(&format!("environments/test.yaml:39: app c: chart web 0.1.0 from {}/tampered: {}/tampered/charts/other.tgz has digest sha256:", server.url(), server.url())),
        "{problems}"
    );
    assert!(
        problems.contains(&format!(", expected {digest}")),
        "{problems}"
    );
}

/// Debian's docker-registry on 127.0.0.1 over TLS, stopped on drop.
struct Registry {
    child: std::process::Child,
    host: String,
    _dir: tempfile::TempDir,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Registry {
    fn start(pki: &TestPki) -> Registry {
        let binary = ["/usr/bin/docker-registry", "/usr/sbin/docker-registry"]
            .into_iter()
            .map(PathBuf::from)
            .find(|p| p.is_file())
            .expect("docker-registry: install Debian's docker-registry package (make oci-registry says how)");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let dir = tempfile::tempdir().expect("registry dir");
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n  tls:\n    certificate: {}\n    key: {}\n",
                dir.path().join("data").display(),
                pki.path("tls.crt").display(),
                pki.path("tls.key").display()
            ),
        )
        .expect("config");
        let child = Command::new(binary)
            .args(["serve", config.to_str().expect("path")])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start docker-registry");
        let registry = Registry {
            child,
            host: format!("127.0.0.1:{port}"),
            _dir: dir,
        };
        for _ in 0..200 {
            if std::net::TcpStream::connect(&registry.host).is_ok() {
                return registry;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("docker-registry did not listen on {}", registry.host);
    }
}

#[test]
fn charts_from_an_oci_registry_are_fetched_and_verified_by_manifest_digest() {
    let pki = TestPki::new();
    let registry = Registry::start(&pki);
    let packages = tempfile::tempdir().expect("packages");
    let (tgz, _) = packaged_chart(packages.path());
    // `helm push` prints the manifest digest it pushed.
    let home = tempfile::tempdir().expect("home");
    let pushed = Command::new(tool(Tool::Helm))
        .args([
            "push",
            tgz.to_str().expect("path"),
            &format!("oci://{}/charts", registry.host),
        ])
        .arg("--ca-file")
        .arg(pki.path("ca.pem"))
        .env("HOME", home.path())
        .env("HELM_CONFIG_HOME", home.path().join("config"))
        .env("HELM_CACHE_HOME", home.path().join("cache"))
        .output()
        .expect("helm push");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&pushed.stdout),
        String::from_utf8_lossy(&pushed.stderr)
    );
    assert!(pushed.status.success(), "helm push: {said}");
    let digest = said
        .lines()
        .find_map(|l| l.strip_prefix("Digest: "))
        .map(|d| d.trim().to_string())
        .unwrap_or_else(|| panic!("no digest in {said}"));
    let url = format!("oci://{}/charts", registry.host);
    let mut fx = GitFixture::new();
    fx.write(
        "environments/test.yaml",
        environment(&remote_app(
            "a",
            &url,
            "web",
            &format!("        digest: {digest}\n"),
        )),
    );
    fx.commit("a chart from an OCI registry");
    let cache = tempfile::tempdir().expect("cache");
    let rendered = expand_trusting(&fx, &pki, cache.path()).unwrap_or_else(|e| panic!("{e}"));
    let expected = packaged_objects(&tgz, "a");
    for cluster in ["eks", "aks", "gke"] {
        assert_eq!(
            tidegate_objects(&rendered, cluster, "a"),
            expected,
            "{cluster}"
        );
    }
    // A wrong pin is refused (with a fresh cache, and with the chart cached).
    for cache in [tempfile::tempdir().expect("cache"), cache] {
        let mut bad = GitFixture::new();
        bad.write(
            "environments/test.yaml",
            environment(&remote_app(
                "a",
                &url,
                "web",
                &format!("        digest: {WRONG_DIGEST}\n"),
            )),
        );
        bad.commit("a wrong digest");
        let problems = expand_trusting(&bad, &pki, cache.path()).expect_err("refused");
        assert!(
            problems.contains(&format!("environments/test.yaml:20: app a: chart web 0.1.0 from {url}: oci://{}/charts/web:0.1.0 has manifest digest {digest}, but the environment pins {WRONG_DIGEST}", registry.host)),
            "{problems}"
        );
    }
}

#[test]
fn repository_credentials_come_from_the_environment_and_are_never_printed() {
    use base64::Engine as _;
    use tidegate_testkit::http::{Response, serve_stub_tls};
    let pki = TestPki::new();
    let packages = tempfile::tempdir().expect("packages");
    let (_, bytes) = packaged_chart(packages.path());
    let hex = tidegate_template::sha256_digest(&bytes)
        .trim_start_matches("sha256:")
        .to_string();
    let index = format!(
        "apiVersion: v1\nentries:\n  web:\n    - name: web\n      version: 0.1.0\n      digest: {hex}\n      urls: [web-0.1.0.tgz]\n"
    );
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("fleet:s3cret-pass")
    );
    let server = serve_stub_tls(&pki.path("tls.crt"), &pki.path("tls.key"), move |request| {
        if request.header("authorization") != Some(expected.as_str()) {
            return Response::text(401, "unauthorized");
        }
        let body = match request.path() {
            "/index.yaml" => index.clone().into_bytes(),
            "/web-0.1.0.tgz" => bytes.clone(),
            _ => return Response::text(404, "not found"),
        };
        Response {
            status: 200,
            content_type: "application/octet-stream".into(),
            body,
        }
    })
    .expect("stub Helm repository");
    let mut fx = GitFixture::new();
    fx.write(
        "environments/test.yaml",
        environment(&remote_app("a", server.url(), "web", "")),
    );
    fx.commit("a chart from a private Helm repository");
    // `tidegate render` with the credentials in its environment (each run
    // with an empty cache, so each one asks the repository).
    let render = |password: &str| {
        let home = tempfile::tempdir().expect("home");
        let out = crate::cluster::tidegate_command(fx.path(), home.path())
            .env("TIDEGATE_HELM", tool(Tool::Helm))
            .env("TIDEGATE_HELM_CA_FILE", pki.path("ca.pem"))
            .env("TIDEGATE_HELM_USERNAME", "fleet")
            .env("TIDEGATE_HELM_PASSWORD", password)
            .env("RUST_LOG", "trace")
            .args(["render", "--env", "test"])
            .output()
            .expect("tidegate render");
        (out.status.code(), crate::cluster::output_text(&out))
    };
    let (code, text) = render("s3cret-pass");
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("kind: Deployment"), "{text}");
    assert!(
        !text.contains("s3cret-pass"),
        "the password was printed:\n{text}"
    );
    let (code, text) = render("wrong-pass-42");
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("401 Unauthorized (set TIDEGATE_HELM_USERNAME and TIDEGATE_HELM_PASSWORD)"),
        "{text}"
    );
    assert!(
        !text.contains("wrong-pass-42"),
        "the password was printed:\n{text}"
    );
}

#[test]
fn an_oci_registry_with_token_authentication_is_read_with_a_bearer_token() {
    use std::sync::{Arc, Mutex};
    use tidegate_testkit::http::{Response, serve_stub_tls};
    let pki = TestPki::new();
    let packages = tempfile::tempdir().expect("packages");
    let (tgz, bytes) = packaged_chart(packages.path());
    let layer = tidegate_template::sha256_digest(&bytes);
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.cncf.helm.config.v1+json", "digest": layer, "size": 2},
        "layers": [{"mediaType": "application/vnd.cncf.helm.chart.content.v1.tar+gzip", "digest": layer, "size": bytes.len()}],
    })
    .to_string();
    let digest = tidegate_template::sha256_digest(manifest.as_bytes());
    // As ghcr.io does for anonymous pulls: 401 with a token realm, then the token.
    let realm: Arc<Mutex<String>> = Arc::default();
    let seen = realm.clone();
    let server = serve_stub_tls(&pki.path("tls.crt"), &pki.path("tls.key"), move |request| {
        let path = request.path().to_string();
        if path.starts_with("/token") {
            return Response::json(200, r#"{"token":"pull-token"}"#);
        }
        if request.header("authorization") != Some("Bearer pull-token") {
            let mut denied = Response::text(401, "unauthorized");
            // The stub has no header list: the challenge rides on Content-Type.
            denied.content_type = format!(
                "text/plain\r\nWWW-Authenticate: Bearer realm=\"{}/token\",service=\"stub\",scope=\"repository:charts/web:pull\"",
                seen.lock().expect("lock")
            );
            return denied;
        }
        match path.as_str() {
            "/v2/charts/web/manifests/0.1.0" => Response {
                status: 200,
                content_type: "application/vnd.oci.image.manifest.v1+json".into(),
                body: manifest.clone().into_bytes(),
            },
            p if p == format!("/v2/charts/web/blobs/{layer}") => Response {
                status: 200,
                content_type: "application/octet-stream".into(),
                body: bytes.clone(),
            },
            _ => Response::text(404, "not found"),
        }
    })
    .expect("stub registry");
    *realm.lock().expect("lock") = server.url().to_string();
    let host = server.url().trim_start_matches("https://").to_string();
    let mut fx = GitFixture::new();
    fx.write(
        "environments/test.yaml",
        environment(&remote_app(
            "a",
            &format!("oci://{host}/charts"),
            "web",
            &format!("        digest: {digest}\n"),
        )),
    );
    fx.commit("a chart from a registry with token authentication");
    let cache = tempfile::tempdir().expect("cache");
    let rendered = expand_trusting(&fx, &pki, cache.path()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        tidegate_objects(&rendered, "aks", "a"),
        packaged_objects(&tgz, "a")
    );
}
