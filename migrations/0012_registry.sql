-- 0012_registry: with ENVHUB_REGISTRY set, every environment version is
-- pushed after its build and recorded by digest: the reference its image is
-- pulled by ("127.0.0.1:5000/envhub/name@sha256:..."), NULL when the version
-- was not pushed (no registry then).

ALTER TABLE builds ADD COLUMN registry_image TEXT;
