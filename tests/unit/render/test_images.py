from pulsebase_operator.render import images


def test_api_image_is_the_release_of_the_version() -> None:
    assert images.api("2.4.1") == "ghcr.io/pulsebase/pulsebase:2.4.1"
    assert images.api("3.0.0-rc.1") == "ghcr.io/pulsebase/pulsebase:3.0.0-rc.1"


def test_api_image_tag_spells_build_metadata_with_an_underscore() -> None:
    assert images.api("2.4.1+build.7") == "ghcr.io/pulsebase/pulsebase:2.4.1_build.7"
    assert images.api("1.0.0-rc.1+sha.5114f85") == (
        "ghcr.io/pulsebase/pulsebase:1.0.0-rc.1_sha.5114f85"
    )


def test_postgres_image_is_tagged_with_the_major_version() -> None:
    assert images.postgres(16) == "ghcr.io/pulsebase/postgres-patroni:16"


def test_dependency_images_are_pinned_by_tag() -> None:
    for image in (images.redis(), images.objectstore(), images.edge()):
        registry_and_name, _, tag = image.rpartition(":")
        assert registry_and_name.startswith("docker.io/")
        assert tag
        assert tag != "latest"
