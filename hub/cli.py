"""`push-dataset DIR --repo-id USER/NAME`: options in, one library call, errors out as one sentence."""

from __future__ import annotations

from pathlib import Path

import click

from dataset_builder.console import user_errors


def _quiet_libraries() -> None:
    """The clients' info/warning logs ("Setting num_proc...", "No files have been modified...") are noise
    next to the one line this command prints; errors still show. Progress bars stay (HF_*_DISABLE_PROGRESS_BARS)."""
    import datasets
    import huggingface_hub

    datasets.logging.set_verbosity_error()
    huggingface_hub.logging.set_verbosity_error()


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="execution-world-model")  # the distribution in pyproject.toml
@click.argument("folder", type=click.Path(path_type=Path))
@click.option("--repo-id", required=True, help="Dataset repo to push to, as USER/NAME (or ORG/NAME).")
@click.option("--private", is_flag=True, help="Create the repo private (or make an existing one private).")
@click.option(
    "--token",
    default=None,
    metavar="TOKEN",
    help="Hub token with write access; default: HF_TOKEN, then the cached `hf auth login`. Never printed.",
)
@click.option("--pretty-name", default="Python execution traces", show_default=True, help="Title of the dataset card.")
@click.option(
    "--license",
    "license_",
    default="apache-2.0",
    show_default=True,
    help="The data's license as a Hub license id (mit, cc-by-4.0, other, ...): the card's metadata and its "
    "License section say it. apache-2.0 covers the project's generated programs; give yours for "
    "--programs data.",
)
@click.option(
    "--commit-message",
    default=None,
    help="Title of the commit [default: 'Publish dataset (N train / M test programs) with its card'].",
)
@click.option(
    "--revision",
    metavar="BRANCH",
    default=None,
    help="Push to this branch (made from main when it does not exist) [default: main].",
)
@click.option(
    "--create-pr",
    is_flag=True,
    help="Open a pull request against main with the commit instead of committing to main.",
)
def main(
    folder: Path,
    repo_id: str,
    private: bool,
    token: str | None,
    pretty_name: str,
    license_: str,
    commit_message: str | None,
    revision: str | None,
    create_pr: bool,
) -> None:
    """Push the dataset that `build-dataset` saved in FOLDER (train and test splits, as parquet) to the
    Hugging Face Hub, with a dataset card rendered from dataset_card.md. The Hub is HF_ENDPOINT
    (default https://huggingface.co). Pushing the same data again changes nothing."""
    from hub.errors import HubError

    interrupted = "Interrupted: the local dataset is untouched; run the same command again to finish."
    with user_errors(HubError, interrupted=interrupted):
        _quiet_libraries()
        from hub.publish import push_dataset

        result = push_dataset(
            folder,
            repo_id,
            token=token,
            private=private,
            pretty_name=pretty_name,
            license=license_,
            commit_message=commit_message,
            revision=revision,
            create_pr=create_pr,
        )
    for warning in result.warnings:
        click.secho(f"Warning: {warning}.", fg="yellow", err=True)
    rows = ", ".join(f"{rows} {name}" for name, rows in result.splits.items())
    where = result.url if result.revision == "main" else f"{result.url} (branch {result.revision})"
    if result.pull_request:
        click.echo(f"Opened {result.pull_request} with {rows} rows and the dataset card (commit {result.commit[:8]}).")
    elif result.changed:
        click.echo(f"Pushed {rows} rows and the dataset card to {where} (commit {result.commit[:8]}).")
    else:
        click.echo(f"{where} already holds this dataset and card (commit {result.commit[:8]}); nothing to push.")


if __name__ == "__main__":
    main()
