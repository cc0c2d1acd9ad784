//! Writing to Git: committing one file's new content on the current branch
//! (blue-green switches and their reverts), and pushing it.

use crate::{SourceError, auth};
use git2::{PushOptions, Repository, Signature, build::TreeUpdateBuilder};
use std::path::Path;

fn git(location: &Path) -> impl Fn(git2::Error) -> SourceError + '_ {
    move |source| SourceError::Git {
        location: location.display().to_string(),
        cause: source,
    }
}

/// Commits `content` as the new content of `file` on the current branch of
/// the repository at `repo_dir`, with `author` (`name`, `email`) as author
/// and committer. When the work tree's copy of the file is the committed one,
/// it is updated too (so the work tree stays clean). Returns the new SHA.
pub fn commit_file(
    repo_dir: &Path,
    file: &str,
    content: &[u8],
    message: &str,
    author: (&str, &str),
) -> Result<String, SourceError> {
    let err = git(repo_dir);
    let repo = Repository::discover(repo_dir).map_err(&err)?;
    let head = repo.head().map_err(&err)?;
    let parent = head.peel_to_commit().map_err(&err)?;
    let tree = parent.tree().map_err(&err)?;
    let old = tree
        .get_path(Path::new(file))
        .ok()
        .and_then(|e| repo.find_blob(e.id()).ok())
        .map(|b| b.content().to_vec());
    let blob = repo.blob(content).map_err(&err)?;
    let mut update = TreeUpdateBuilder::new();
    update.upsert(file, blob, git2::FileMode::Blob);
    let new_tree_id = update.create_updated(&repo, &tree).map_err(&err)?;
    let new_tree = repo.find_tree(new_tree_id).map_err(&err)?;
    let signature = Signature::now(author.0, author.1).map_err(&err)?;
    let id = repo
        .commit(
            Some("HEAD"),
            &signature,
            &signature,
            message,
            &new_tree,
            &[&parent],
        )
        .map_err(&err)?;
    if let Some(workdir) = repo.workdir() {
        let path = workdir.join(file);
        if std::fs::read(&path).ok() == old {
            std::fs::write(&path, content).map_err(|source| SourceError::Cache {
                path: path.clone(),
                cause: source,
            })?;
            let mut index = repo.index().map_err(&err)?;
            index.add_path(Path::new(file)).map_err(&err)?;
            index.write().map_err(&err)?;
        }
    }
    Ok(id.to_string())
}

/// Pushes the current branch to `remote` (credentials as for fetching).
pub fn push_current_branch(repo_dir: &Path, remote: &str) -> Result<(), SourceError> {
    let err = git(repo_dir);
    let repo = Repository::discover(repo_dir).map_err(&err)?;
    let head = repo.head().map_err(&err)?;
    let branch = head
        .name()
        .ok()
        .filter(|n| n.starts_with("refs/heads/"))
        .map(str::to_string)
        .ok_or_else(|| {
            err(git2::Error::from_str(
                "HEAD is not on a branch; cannot push",
            ))
        })?;
    let mut remote = repo.find_remote(remote).map_err(&err)?;
    let url = remote.url().ok().unwrap_or("?").to_string();
    // The remote of the operator's own checkout may receive the token.
    let mut scope = auth::CredentialScope::from_env();
    scope.allow_url(&url);
    let mut options = PushOptions::new();
    options.remote_callbacks(auth::callbacks(&scope));
    remote
        .push(&[format!("{branch}:{branch}")], Some(&mut options))
        .map_err(|source| SourceError::Fetch {
            url: crate::location::redact_url(&url),
            cause: source,
        })
}
