//! What several benchmarks share.

use tidegate_tests::GitFixture;

/// Reads `env` and its apps from the fixture's HEAD and renders them, as
/// the CLI does (no Helm or Kustomize apps).
pub fn load(git: &GitFixture, env: &str) -> (tidegate_source::Desired, tidegate_render::Rendered) {
    let repo = tidegate_source::Repo::open_local(git.path()).expect("open");
    let commit = repo.resolve("HEAD").expect("HEAD");
    let cache = tempfile::tempdir().expect("cache");
    let (environment, file) =
        tidegate_source::desired::load_environment(&repo, &commit, env).expect("env");
    let desired = tidegate_source::desired::load_desired(
        &tidegate_source::GitSource::new(cache.path()),
        &repo,
        &commit,
        environment,
        file,
        &Default::default(),
    )
    .expect("desired");
    let rendered = tidegate_render::render_environment(
        &desired.environment,
        &desired.env_file,
        &desired.commit.sha,
        &desired.apps,
    )
    .expect("render");
    (desired, rendered)
}
