use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::json;

use super::duration::duration_secs;
use super::interpolate::expand_for_test;
use super::*;
use crate::{Health, NetworkSpec};

fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn parse(yaml: &str) -> Result<Stack, String> {
    parse_compose(yaml, &BTreeMap::new(), &Permissions::default())
}

fn parse_err(yaml: &str) -> String {
    parse(yaml).expect_err("the file should be refused")
}

fn bind_mounts() -> Permissions {
    Permissions { bind_mounts: true }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

/// A file with one service `web` whose extra lines are `service` (indented
/// by 4) and whose top level ends with `top`.
fn web(service: &str, top: &str) -> String {
    let mut s = String::from("services:\n  web:\n    image: nginx:1.27\n");
    for line in service.lines() {
        s.push_str("    ");
        s.push_str(line);
        s.push('\n');
    }
    s.push_str(top);
    s
}

fn web_spec(service: &str, top: &str) -> Spec {
    parse(&web(service, top)).unwrap().services[0].spec.clone()
}

fn expand(s: &str, vars: &[(&str, &str)]) -> Result<String, String> {
    expand_for_test(s, &env(vars))
}

const SHOP: &str = r#"
version: "3.9"

x-common: &common
  restart: unless-stopped
  labels:
    team: shop
  environment: &common-env
    TZ: UTC

services:
  web:
    <<: *common
    image: "registry.example.com/shop/web:${TAG:-1.4}"
    command: ["gunicorn", "app:app", "--bind", "0.0.0.0:8000"]
    ports:
      - "127.0.0.1:8080:8000"
    environment:
      <<: *common-env
      DATABASE_URL: postgres://shop:${DB_PASSWORD}@db:5432/shop
      CACHE_URL: redis://cache:6379
    networks: [default, back]
    depends_on:
      db:
        condition: service_healthy
      cache:
        condition: service_started
    deploy:
      resources:
        limits:
          memory: 512m
          cpus: "0.5"
    stop_grace_period: 20s
    x-notes: served behind the proxy

  db:
    <<: *common
    image: postgres:16
    environment:
      POSTGRES_USER: shop
      POSTGRES_PASSWORD: ${DB_PASSWORD:?set DB_PASSWORD}
    volumes:
      - data:/var/lib/postgresql/data
    networks:
      back:
        aliases: [postgres]
    healthcheck:
      test: ["CMD-SHELL", "pg_isready -U shop"]
      interval: 5s
      timeout: 3s
      retries: 5
      start_period: 1m

  cache:
    <<: *common
    image: redis:7-alpine
    command: redis-server --save "" --appendonly no
    mem_limit: 128m

volumes:
  data:

networks:
  back: {}
"#;

#[test]
fn realistic_three_service_file_becomes_the_expected_stack() {
    let stack = parse_compose(
        SHOP,
        &env(&[("DB_PASSWORD", "s3cret")]),
        &Permissions::default(),
    )
    .unwrap();
    let common = |image: &str| Spec {
        image: Some(image.to_owned()),
        restart: Some("unless-stopped".into()),
        labels: Some(env(&[("team", "shop")])),
        ..Spec::default()
    };
    let cache = Service {
        name: "cache".into(),
        spec: Spec {
            cmd: Some(strings(&[
                "redis-server",
                "--save",
                "",
                "--appendonly",
                "no",
            ])),
            env: Some(env(&[("TZ", "UTC")])),
            memory: Some("128m".into()),
            networks: Some(vec![NetworkSpec {
                name: "default".into(),
                aliases: strings(&["cache"]),
            }]),
            ..common("redis:7-alpine")
        },
        depends_on: vec![],
    };
    let db = Service {
        name: "db".into(),
        spec: Spec {
            env: Some(env(&[
                ("POSTGRES_USER", "shop"),
                ("POSTGRES_PASSWORD", "s3cret"),
            ])),
            volumes: Some(strings(&["data:/var/lib/postgresql/data"])),
            networks: Some(vec![NetworkSpec {
                name: "back".into(),
                aliases: strings(&["db", "postgres"]),
            }]),
            health: Some(Health {
                cmd: Some(strings(&["CMD-SHELL", "pg_isready -U shop"])),
                interval_s: Some(5),
                probe_timeout_s: Some(3),
                retries: Some(5),
                start_period_s: Some(60),
                timeout_s: None,
            }),
            ..common("postgres:16")
        },
        depends_on: vec![],
    };
    let web = Service {
        name: "web".into(),
        spec: Spec {
            cmd: Some(strings(&["gunicorn", "app:app", "--bind", "0.0.0.0:8000"])),
            ports: Some(strings(&["127.0.0.1:8080:8000"])),
            env: Some(env(&[
                ("TZ", "UTC"),
                ("DATABASE_URL", "postgres://shop:s3cret@db:5432/shop"),
                ("CACHE_URL", "redis://cache:6379"),
            ])),
            networks: Some(vec![
                NetworkSpec {
                    name: "default".into(),
                    aliases: strings(&["web"]),
                },
                NetworkSpec {
                    name: "back".into(),
                    aliases: strings(&["web"]),
                },
            ]),
            memory: Some("512m".into()),
            cpus: Some(0.5),
            stop_timeout_s: Some(20),
            ..common("registry.example.com/shop/web:1.4")
        },
        depends_on: vec![
            Dependency {
                service: "cache".into(),
                condition: Condition::Started,
            },
            Dependency {
                service: "db".into(),
                condition: Condition::Healthy,
            },
        ],
    };
    let expected = Stack {
        services: vec![cache, db, web],
        volumes: vec![StackVolume {
            name: "data".into(),
            external: false,
            docker_name: None,
        }],
        networks: vec![
            StackNetwork {
                name: "back".into(),
                external: false,
                docker_name: None,
            },
            StackNetwork {
                name: "default".into(),
                external: false,
                docker_name: None,
            },
        ],
    };
    assert_eq!(stack, expected);
}

#[test]
fn stack_round_trips_through_json() {
    let stack = parse_compose(
        SHOP,
        &env(&[("DB_PASSWORD", "s3cret")]),
        &Permissions::default(),
    )
    .unwrap();
    let json = serde_json::to_value(&stack).unwrap();
    assert_eq!(
        json["services"][2]["depends_on"][1]["condition"],
        "service_healthy"
    );
    let back: Stack = serde_json::from_value(json).unwrap();
    assert_eq!(back, stack);
}

#[test]
fn layers_group_services_by_dependency_level() {
    let stack =
        parse_compose(SHOP, &env(&[("DB_PASSWORD", "x")]), &Permissions::default()).unwrap();
    assert_eq!(stack.layers(), vec![vec!["cache", "db"], vec!["web"]]);
}

#[test]
fn layers_of_a_chain_have_one_service_each_and_siblings_share_one() {
    let stack = parse(
        "services:
  proxy: {image: nginx, depends_on: [app]}
  app: {image: app, depends_on: [db, cache]}
  worker: {image: app, depends_on: [db]}
  db: {image: postgres}
  cache: {image: redis}
",
    )
    .unwrap();
    assert_eq!(
        stack.layers(),
        vec![vec!["cache", "db"], vec!["app", "worker"], vec!["proxy"]]
    );
}

#[test]
fn start_order_is_level_by_level_and_by_name_within_a_level() {
    let stack = parse(
        "services:
  proxy: {image: nginx, depends_on: [app]}
  app: {image: app, depends_on: [db]}
  db: {image: postgres}
  metrics: {image: prom}
",
    )
    .unwrap();
    let order: Vec<&str> = stack.services.iter().map(|s| s.name.as_str()).collect();
    // `metrics` waits for nothing, so it does not wait behind `app`.
    assert_eq!(order, ["db", "metrics", "app", "proxy"]);
}

#[test]
fn stop_order_is_the_reverse_of_start_order() {
    let stack = parse(
        "services:
  proxy: {image: nginx, depends_on: [app]}
  app: {image: app, depends_on: [db]}
  db: {image: postgres}
",
    )
    .unwrap();
    let stop: Vec<&str> = stack.stop_order().map(|s| s.name.as_str()).collect();
    assert_eq!(stop, ["proxy", "app", "db"]);
}

#[test]
fn service_finds_a_service_by_name() {
    let stack = parse("services:\n  a: {image: x}\n  b: {image: y}\n").unwrap();
    assert_eq!(stack.service("b").unwrap().spec.image.as_deref(), Some("y"));
    assert!(stack.service("c").is_none());
}

// ---- unsupported keys ----

#[test]
fn build_is_refused_naming_its_path() {
    let e = parse_err("services:\n  web:\n    build: .\n");
    assert!(e.starts_with("`services.web.build`: not supported"), "{e}");
}

#[test]
fn top_level_secrets_are_refused_naming_their_path() {
    let e = parse_err(&web("", "secrets:\n  pw:\n    file: ./pw.txt\n"));
    assert!(e.starts_with("`secrets`: not supported"), "{e}");
}

#[test]
fn service_secrets_are_refused_naming_their_path() {
    let e = parse_err(&web("secrets: [pw]", ""));
    assert!(
        e.starts_with("`services.web.secrets`: not supported"),
        "{e}"
    );
}

#[test]
fn top_level_configs_are_refused_naming_their_path() {
    let e = parse_err(&web("", "configs:\n  app:\n    file: ./app.conf\n"));
    assert!(e.starts_with("`configs`: not supported"), "{e}");
}

#[test]
fn profiles_are_refused_naming_their_path() {
    let e = parse_err(&web("profiles: [debug]", ""));
    assert!(
        e.starts_with("`services.web.profiles`: not supported"),
        "{e}"
    );
}

#[test]
fn extends_is_refused_naming_its_path() {
    let e = parse_err(&web("extends:\n  service: base", ""));
    assert!(
        e.starts_with("`services.web.extends`: not supported"),
        "{e}"
    );
}

#[test]
fn env_file_is_refused_saying_to_use_environment() {
    let e = parse_err(&web("env_file: .env", ""));
    assert_eq!(
        e,
        "`services.web.env_file`: not supported: the server reads no files; put the variables in `environment`"
    );
}

#[test]
fn container_name_is_refused_naming_its_path() {
    let e = parse_err(&web("container_name: my-web", ""));
    assert!(
        e.starts_with("`services.web.container_name`: not supported"),
        "{e}"
    );
}

#[test]
fn volume_driver_is_refused_naming_its_path() {
    let e = parse_err(&web("", "volumes:\n  data:\n    driver: local\n"));
    assert!(e.starts_with("`volumes.data.driver`: not supported"), "{e}");
}

#[test]
fn network_driver_options_are_refused_naming_their_path() {
    let e = parse_err(&web("", "networks:\n  back:\n    internal: true\n"));
    assert!(
        e.starts_with("`networks.back.internal`: not supported"),
        "{e}"
    );
}

#[test]
fn deploy_replicas_are_refused_naming_their_path() {
    let e = parse_err(&web("deploy:\n  replicas: 3", ""));
    assert!(
        e.starts_with("`services.web.deploy.replicas`: not supported"),
        "{e}"
    );
}

#[test]
fn deploy_reservations_are_refused_naming_their_path() {
    let e = parse_err(&web(
        "deploy:\n  resources:\n    reservations:\n      memory: 1g",
        "",
    ));
    assert!(
        e.starts_with("`services.web.deploy.resources.reservations`: not supported"),
        "{e}"
    );
}

#[test]
fn unknown_service_key_is_refused_listing_the_supported_ones() {
    let e = parse_err(&web("privileged: true", ""));
    assert!(
        e.starts_with("`services.web.privileged`: not supported (supported here: `image`"),
        "{e}"
    );
}

#[test]
fn project_name_is_refused() {
    let e = parse_err(&web("", "name: shop\n"));
    assert_eq!(e, "`name`: the project name is the Deckhand target's");
}

#[test]
fn include_is_refused() {
    let e = parse_err(&web("", "include: [other.yaml]\n"));
    assert!(e.starts_with("`include`: not supported"), "{e}");
}

#[test]
fn extension_keys_are_ignored_at_the_top_and_in_a_service() {
    let spec = web_spec(
        "x-owner: team-a",
        "x-anything:\n  - whatever: ${NOT SYNTAX\n",
    );
    assert_eq!(spec.image.as_deref(), Some("nginx:1.27"));
}

#[test]
fn version_is_accepted_and_ignored() {
    assert!(parse(&web("", "version: '3.8'\n")).is_ok());
}

// ---- interpolation ----

#[test]
fn double_dollar_is_a_literal_dollar() {
    assert_eq!(expand("a$$b$${X}", &[("X", "1")]).unwrap(), "a$b${X}");
}

#[test]
fn bare_and_braced_variables_take_their_env_value() {
    assert_eq!(
        expand("$A-${B}.$A_1", &[("A", "x"), ("B", "y"), ("A_1", "z")]).unwrap(),
        "x-y.z"
    );
}

#[test]
fn unset_variable_is_empty() {
    assert_eq!(expand("a${NOPE}b$NOPE", &[]).unwrap(), "ab");
}

#[test]
fn colon_dash_default_applies_when_unset_or_empty() {
    assert_eq!(expand("${A:-d}", &[]).unwrap(), "d");
    assert_eq!(expand("${A:-d}", &[("A", "")]).unwrap(), "d");
    assert_eq!(expand("${A:-d}", &[("A", "v")]).unwrap(), "v");
}

#[test]
fn dash_default_applies_only_when_unset() {
    assert_eq!(expand("${A-d}", &[]).unwrap(), "d");
    assert_eq!(expand("${A-d}", &[("A", "")]).unwrap(), "");
}

#[test]
fn nested_default_is_interpolated() {
    assert_eq!(expand("${A:-${B:-fallback}-x}", &[]).unwrap(), "fallback-x");
    assert_eq!(expand("${A:-${B}}", &[("B", "b")]).unwrap(), "b");
}

#[test]
fn colon_question_fails_when_unset_or_empty_with_the_message() {
    assert_eq!(
        expand("${TAG:?set TAG}", &[("TAG", "")]).unwrap_err(),
        "required variable TAG is missing a value: set TAG"
    );
    assert_eq!(expand("${TAG:?set TAG}", &[("TAG", "1")]).unwrap(), "1");
}

#[test]
fn question_fails_only_when_unset() {
    assert_eq!(
        expand("${TAG?}", &[]).unwrap_err(),
        "required variable TAG is missing a value"
    );
    assert_eq!(expand("${TAG?}", &[("TAG", "")]).unwrap(), "");
}

#[test]
fn colon_plus_gives_the_alternative_when_set_and_not_empty() {
    assert_eq!(expand("${A:+on}", &[("A", "1")]).unwrap(), "on");
    assert_eq!(expand("${A:+on}", &[("A", "")]).unwrap(), "");
    assert_eq!(expand("${A:+on}", &[]).unwrap(), "");
}

#[test]
fn plus_gives_the_alternative_when_set() {
    assert_eq!(expand("${A+on}", &[("A", "")]).unwrap(), "on");
    assert_eq!(expand("${A+on}", &[]).unwrap(), "");
}

#[test]
fn unclosed_brace_is_an_error() {
    let e = expand("x${A:-b", &[]).unwrap_err();
    assert!(e.contains("is not closed"), "{e}");
}

#[test]
fn empty_variable_name_is_an_error() {
    let e = expand("${}", &[]).unwrap_err();
    assert!(e.contains("the variable name is missing"), "{e}");
}

#[test]
fn bad_variable_name_is_an_error() {
    let e = expand("${1A}", &[]).unwrap_err();
    assert!(e.contains("is not a variable name"), "{e}");
    let e = expand("${A B}", &[]).unwrap_err();
    assert!(e.contains("unknown syntax"), "{e}");
}

#[test]
fn lone_dollar_is_an_error() {
    let e = expand("costs 5$", &[]).unwrap_err();
    assert!(e.contains("written `$$`"), "{e}");
}

#[test]
fn missing_required_variable_names_the_path() {
    let e = parse_err("services:\n  web:\n    image: nginx:${TAG:?set TAG}\n");
    assert_eq!(
        e,
        "`services.web.image`: required variable TAG is missing a value: set TAG"
    );
}

#[test]
fn interpolation_ignores_the_process_environment() {
    // PATH is set in any test process; only `env` counts.
    let spec = web_spec("environment:\n  P: x${PATH}x", "");
    assert_eq!(spec.env.unwrap()["P"], "xx");
}

#[test]
fn keys_are_not_interpolated() {
    let spec = web_spec("labels:\n  $$weird: ${V:-v}", "");
    assert_eq!(spec.labels.unwrap()["$$weird"], "v");
}

#[test]
fn interpolated_strings_are_bounded() {
    let big = "x".repeat(20_000);
    let e = parse_compose(
        &web("environment:\n  A: $BIG$BIG", ""),
        &env(&[("BIG", &big)]),
        &Permissions::default(),
    )
    .unwrap_err();
    assert!(
        e.starts_with("`services.web.environment.A`: longer than"),
        "{e}"
    );
}

// ---- dependencies ----

#[test]
fn unknown_dependency_is_refused() {
    let e = parse_err(&web("depends_on: [db]", ""));
    assert_eq!(e, "`services.web.depends_on.db`: no service `db`");
}

#[test]
fn unknown_optional_dependency_is_left_out() {
    let stack = parse(&web(
        "depends_on:\n  db:\n    condition: service_started\n    required: false",
        "",
    ))
    .unwrap();
    assert!(stack.services[0].depends_on.is_empty());
}

#[test]
fn unknown_dependency_condition_is_refused() {
    let e = parse_err(
        "services:\n  web:\n    image: a\n    depends_on:\n      db: {condition: service_ready}\n  db:\n    image: b\n",
    );
    assert!(
        e.starts_with("`services.web.depends_on.db.condition`: unknown variant"),
        "{e}"
    );
}

#[test]
fn dependency_conditions_are_read() {
    let stack = parse(
        "services:
  web:
    image: a
    depends_on:
      migrate: {condition: service_completed_successfully}
      db: {condition: service_healthy, restart: true}
  migrate: {image: a}
  db: {image: b}
",
    )
    .unwrap();
    assert_eq!(
        stack.service("web").unwrap().depends_on,
        vec![
            Dependency {
                service: "db".into(),
                condition: Condition::Healthy
            },
            Dependency {
                service: "migrate".into(),
                condition: Condition::CompletedSuccessfully
            },
        ]
    );
}

#[test]
fn two_service_cycle_is_refused_showing_the_cycle() {
    let e = parse_err(
        "services:\n  web: {image: a, depends_on: [db]}\n  db: {image: b, depends_on: [web]}\n",
    );
    assert_eq!(e, "`services`: dependency cycle db -> web -> db");
}

#[test]
fn three_service_cycle_is_refused_showing_the_cycle() {
    let e = parse_err(
        "services:
  a: {image: x, depends_on: [b]}
  b: {image: x, depends_on: [c]}
  c: {image: x, depends_on: [a]}
  d: {image: x}
",
    );
    assert_eq!(e, "`services`: dependency cycle a -> b -> c -> a");
}

#[test]
fn self_dependency_is_a_cycle() {
    let e = parse_err(&web("depends_on: [web]", ""));
    assert_eq!(e, "`services`: dependency cycle web -> web");
}

// ---- volumes and networks ----

#[test]
fn undeclared_volume_is_refused() {
    let e = parse_err(&web("volumes: ['data:/srv']", ""));
    assert_eq!(
        e,
        "`services.web.volumes[0]`: volume `data` is not declared in the top-level `volumes`"
    );
}

#[test]
fn undeclared_network_is_refused() {
    let e = parse_err(&web("networks: [back]", ""));
    assert_eq!(
        e,
        "`services.web.networks[0]`: network `back` is not declared in the top-level `networks`"
    );
}

#[test]
fn relative_bind_is_refused() {
    let e = parse_err(&web("volumes: ['./conf:/etc/app']", ""));
    assert!(
        e.starts_with("`services.web.volumes[0]`: `./conf` is a relative path"),
        "{e}"
    );
    assert!(e.contains("relative paths need files on the server"), "{e}");
}

#[test]
fn anonymous_volume_is_refused() {
    let e = parse_err(&web("volumes: ['/var/cache']", ""));
    assert!(
        e.starts_with("`services.web.volumes[0]`: anonymous volumes are not supported"),
        "{e}"
    );
}

#[test]
fn bind_mount_without_permission_is_refused() {
    let e = parse_err(&web("volumes: ['/etc/app:/etc/app:ro']", ""));
    assert!(
        e.starts_with("`services.web.volumes[0]`: bind mounts (host paths) are not allowed"),
        "{e}"
    );
}

#[test]
fn bind_mount_with_permission_is_kept() {
    let stack = parse_compose(
        &web("volumes: ['/etc/app:/etc/app:ro']", ""),
        &BTreeMap::new(),
        &bind_mounts(),
    )
    .unwrap();
    assert_eq!(
        stack.services[0].spec.volumes,
        Some(strings(&["/etc/app:/etc/app:ro"]))
    );
}

#[test]
fn long_form_volumes_become_short_strings() {
    let stack = parse_compose(
        &web(
            "volumes:
  - {type: volume, source: data, target: /var/lib/x, read_only: true}
  - {type: bind, source: /srv/conf, target: /etc/x}",
            "volumes:\n  data: {}\n",
        ),
        &BTreeMap::new(),
        &bind_mounts(),
    )
    .unwrap();
    assert_eq!(
        stack.services[0].spec.volumes,
        Some(strings(&["data:/var/lib/x:ro", "/srv/conf:/etc/x"]))
    );
}

#[test]
fn tmpfs_volume_type_is_refused() {
    let e = parse_err(&web("volumes:\n  - {type: tmpfs, target: /tmp}", ""));
    assert!(
        e.starts_with("`services.web.volumes[0].type`: `tmpfs` is not supported"),
        "{e}"
    );
}

#[test]
fn external_and_named_volumes_keep_their_docker_names() {
    let stack = parse(&web(
        "volumes: ['a:/a', 'b:/b', 'c:/c']",
        "volumes:\n  a:\n  b: {external: true}\n  c: {name: shop-c}\n",
    ))
    .unwrap();
    assert_eq!(
        stack.volumes,
        vec![
            StackVolume {
                name: "a".into(),
                external: false,
                docker_name: None
            },
            StackVolume {
                name: "b".into(),
                external: true,
                docker_name: Some("b".into())
            },
            StackVolume {
                name: "c".into(),
                external: false,
                docker_name: Some("shop-c".into())
            },
        ]
    );
}

#[test]
fn service_without_networks_joins_default_with_its_name_as_alias() {
    let stack = parse(&web("", "")).unwrap();
    assert_eq!(
        stack.services[0].spec.networks,
        Some(vec![NetworkSpec {
            name: "default".into(),
            aliases: strings(&["web"])
        }])
    );
    assert_eq!(
        stack.networks,
        vec![StackNetwork {
            name: "default".into(),
            external: false,
            docker_name: None
        }]
    );
}

#[test]
fn declared_default_network_is_kept_as_declared() {
    let stack = parse(&web(
        "",
        "networks:\n  default:\n    external: true\n    name: shared\n",
    ))
    .unwrap();
    assert_eq!(
        stack.networks,
        vec![StackNetwork {
            name: "default".into(),
            external: true,
            docker_name: Some("shared".into())
        }]
    );
}

#[test]
fn network_map_form_adds_aliases_after_the_service_name() {
    let spec = web_spec(
        "networks:\n  front:\n    aliases: [www, web]\n  back:",
        "networks:\n  front:\n  back:\n",
    );
    assert_eq!(
        spec.networks,
        Some(vec![
            NetworkSpec {
                name: "back".into(),
                aliases: strings(&["web"])
            },
            NetworkSpec {
                name: "front".into(),
                aliases: strings(&["web", "www"])
            },
        ])
    );
}

#[test]
fn bad_network_alias_is_refused_naming_its_path() {
    let e = parse_err(&web(
        "networks:\n  back:\n    aliases: [no_underscores]",
        "networks:\n  back:\n",
    ));
    assert!(
        e.starts_with("`services.web.networks.back.aliases[0]`: "),
        "{e}"
    );
}

#[test]
fn unused_stack_default_network_is_not_added() {
    let stack = parse(&web("networks: [back]", "networks:\n  back:\n")).unwrap();
    let names: Vec<&str> = stack.networks.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["back"]);
}

// ---- service names and bounds ----

#[test]
fn uppercase_service_name_is_refused_saying_why() {
    let e = parse_err("services:\n  Web:\n    image: nginx\n");
    assert!(
        e.starts_with("`services.Web`: a service name is 1–63 lowercase"),
        "{e}"
    );
    assert!(e.contains("deckhand-<target>-<service>"), "{e}");
}

#[test]
fn service_name_that_is_no_dns_label_is_refused() {
    let e = parse_err("services:\n  my_app:\n    image: nginx\n");
    assert!(e.starts_with("`services.my_app`: "), "{e}");
    assert!(e.contains("DNS label"), "{e}");
}

#[test]
fn too_many_services_are_refused() {
    let mut yaml = String::from("services:\n");
    for i in 0..=MAX_SERVICES {
        yaml.push_str(&format!("  s{i}: {{image: nginx}}\n"));
    }
    let e = parse_err(&yaml);
    assert_eq!(e, "`services`: at most 32 services (got 33)");
}

#[test]
fn a_file_without_services_is_refused() {
    assert!(parse_err("volumes: {}\n").starts_with("`services`: required"));
    assert!(parse_err("services: {}\n").starts_with("`services`: a Compose file has"));
    assert_eq!(
        parse_err(""),
        "the Compose file must be a mapping with `services`"
    );
}

#[test]
fn service_given_as_a_list_is_refused() {
    let e = parse_err("services:\n  web: [nginx]\n");
    assert_eq!(
        e,
        "`services.web`: invalid type: sequence, expected a service: a mapping with `image`"
    );
}

#[test]
fn healthcheck_given_as_a_list_is_refused() {
    let e = parse_err(&web("healthcheck: [CMD, 'true']", ""));
    assert!(
        e.starts_with("`services.web.healthcheck`: invalid type: sequence"),
        "{e}"
    );
}

#[test]
fn predefined_network_key_is_refused() {
    let e = parse_err(&web("", "networks:\n  host:\n"));
    assert!(
        e.starts_with("`networks.host`: `host` is one of Docker's predefined networks"),
        "{e}"
    );
}

#[test]
fn multiple_documents_are_refused() {
    let e = parse_err("services:\n  web: {image: a}\n---\nservices: {}\n");
    assert_eq!(
        e,
        "the Compose file must be one YAML document (no `---` between documents)"
    );
}

#[test]
fn top_level_volumes_and_networks_are_bounded() {
    let volumes: String = (0..65).map(|i| format!("  v{i}:\n")).collect();
    let e = parse_err(&web("", &format!("volumes:\n{volumes}")));
    assert_eq!(e, "`volumes`: at most 64 volumes (got 65)");
    let networks: String = (0..17).map(|i| format!("  n{i}:\n")).collect();
    let e = parse_err(&web("", &format!("networks:\n{networks}")));
    assert_eq!(e, "`networks`: at most 16 networks (got 17)");
}

#[test]
fn missing_image_is_refused() {
    let e = parse_err("services:\n  web:\n    command: [x]\n");
    assert!(e.starts_with("`services.web.image`: required"), "{e}");
}

#[test]
fn oversized_text_is_refused_before_parsing() {
    let text = format!("# {}\n{}", "x".repeat(MAX_COMPOSE_BYTES), web("", ""));
    let e = parse_err(&text);
    assert!(e.starts_with("the Compose file is "), "{e}");
    assert!(e.contains("at most 262144"), "{e}");
}

#[test]
fn alias_bomb_is_refused_quickly() {
    let mut yaml = String::from("x-a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    let names = ["a", "b", "c", "d", "e", "f", "g", "h", "i"];
    for w in names.windows(2) {
        let refs = vec![format!("*{}", w[0]); 9].join(", ");
        yaml.push_str(&format!("x-{}: &{} [{refs}]\n", w[1], w[1]));
    }
    yaml.push_str("services:\n  web:\n    image: nginx\n    labels: {lol: *i}\n");
    let start = Instant::now();
    let e = parse_err(&yaml);
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    assert!(
        e.starts_with("the Compose file is too large, too deep or expands too much"),
        "{e}"
    );
}

#[test]
fn deep_nesting_is_refused() {
    let yaml = format!("services: {}{}", "[".repeat(200), "]".repeat(200));
    let e = parse_err(&yaml);
    assert!(e.starts_with("the Compose file is"), "{e}");
}

#[test]
fn merge_keys_merge_extension_blocks() {
    let stack = parse(
        "x-defaults: &defaults
  restart: \"no\"
  user: 1000
services:
  web:
    <<: *defaults
    image: nginx
    restart: always
",
    )
    .unwrap();
    let spec = &stack.services[0].spec;
    assert_eq!(spec.restart.as_deref(), Some("always"));
    assert_eq!(spec.user.as_deref(), Some("1000"));
}

#[test]
fn invalid_yaml_is_refused_with_its_location() {
    let e = parse_err("services:\n  web: [\n");
    assert!(e.starts_with("the Compose file is not valid YAML"), "{e}");
    assert!(e.contains("line"), "{e}");
}

#[test]
fn duplicate_keys_are_refused() {
    let e = parse_err("services:\n  web: {image: a}\n  web: {image: b}\n");
    assert!(e.contains("duplicate mapping key"), "{e}");
}

// ---- durations ----

#[test]
fn durations_read_go_syntax_rounded_up_to_seconds() {
    assert_eq!(duration_secs("10s"), Ok(10));
    assert_eq!(duration_secs("1h30m"), Ok(5400));
    assert_eq!(duration_secs("1.5s"), Ok(2));
    assert_eq!(duration_secs("500ms"), Ok(1));
    assert_eq!(duration_secs("2m"), Ok(120));
    assert_eq!(duration_secs("1m0.5s"), Ok(61));
    assert_eq!(duration_secs("0s"), Ok(0));
    assert_eq!(duration_secs("90"), Ok(90));
}

#[test]
fn invalid_durations_are_refused() {
    for bad in ["", "s", "10x", "-5s", "1.2.3s", "1d", "10 s", "1.5"] {
        assert!(duration_secs(bad).is_err(), "{bad:?}");
    }
    assert!(duration_secs("9999999999h").is_err());
}

#[test]
fn invalid_duration_names_its_path() {
    let e = parse_err(&web(
        "healthcheck:\n  test: [CMD, true]\n  interval: soon",
        "",
    ));
    assert!(
        e.starts_with("`services.web.healthcheck.interval`: `soon` is not a duration"),
        "{e}"
    );
}

#[test]
fn health_durations_are_at_least_one_second() {
    let spec = web_spec(
        "healthcheck:\n  test: curl -f http://localhost/\n  interval: 200ms\n  timeout: 0s",
        "",
    );
    let health = spec.health.unwrap();
    assert_eq!(
        health.cmd,
        Some(strings(&["CMD-SHELL", "curl -f http://localhost/"]))
    );
    assert_eq!(health.interval_s, Some(1));
    assert_eq!(health.probe_timeout_s, Some(1));
}

#[test]
fn disabled_healthcheck_is_none() {
    let spec = web_spec("healthcheck:\n  disable: true", "");
    assert_eq!(spec.health.unwrap().cmd, Some(strings(&["NONE"])));
}

#[test]
fn stop_grace_period_is_rounded_up_to_seconds() {
    let spec = web_spec("stop_grace_period: 1m30.2s", "");
    assert_eq!(spec.stop_timeout_s, Some(91));
    let spec = web_spec("stop_grace_period: 15", "");
    assert_eq!(spec.stop_timeout_s, Some(15));
}

// ---- commands, environment, labels ----

#[test]
fn command_string_is_split_as_a_shell_would() {
    let spec = web_spec(r#"command: sh -c 'echo "hi there"' --flag=a\ b"#, "");
    assert_eq!(
        spec.cmd,
        Some(strings(&["sh", "-c", "echo \"hi there\"", "--flag=a b"]))
    );
}

#[test]
fn command_string_that_does_not_split_is_refused() {
    let e = parse_err(&web("command: echo 'unclosed", ""));
    assert!(
        e.starts_with("`services.web.command`: cannot be split into words"),
        "{e}"
    );
}

#[test]
fn entrypoint_list_is_kept_and_empty_resets_the_image_entrypoint() {
    let spec = web_spec("entrypoint: [/bin/sh, -c]", "");
    assert_eq!(spec.entrypoint, Some(strings(&["/bin/sh", "-c"])));
    let spec = web_spec("entrypoint: ''", "");
    assert_eq!(spec.entrypoint, Some(strings(&[""])));
}

#[test]
fn environment_list_form_reads_pairs_and_bare_names_from_env() {
    let stack = parse_compose(
        &web(
            "environment:\n  - A=1\n  - B=x=y\n  - FROM_ENV\n  - MISSING\n  - EMPTY=",
            "",
        ),
        &env(&[("FROM_ENV", "given")]),
        &Permissions::default(),
    )
    .unwrap();
    assert_eq!(
        stack.services[0].spec.env,
        Some(env(&[
            ("A", "1"),
            ("B", "x=y"),
            ("FROM_ENV", "given"),
            ("EMPTY", "")
        ]))
    );
}

#[test]
fn environment_map_form_reads_scalars_and_nulls_from_env() {
    let stack = parse_compose(
        &web(
            "environment:\n  PORT: 8080\n  DEBUG: true\n  RATIO: 1.0\n  ZIP: 01234\n  FROM_ENV:\n  MISSING: null\n  NAME: web",
            "",
        ),
        &env(&[("FROM_ENV", "given")]),
        &Permissions::default(),
    )
    .unwrap();
    assert_eq!(
        stack.services[0].spec.env,
        Some(env(&[
            ("PORT", "8080"),
            ("DEBUG", "true"),
            ("RATIO", "1.0"),
            ("ZIP", "01234"),
            ("FROM_ENV", "given"),
            ("NAME", "web")
        ]))
    );
}

#[test]
fn bad_environment_name_is_refused_naming_its_path() {
    let e = parse_err(&web("environment:\n  - 'A B=1'", ""));
    assert!(e.starts_with("`services.web.environment[0]`: "), "{e}");
}

#[test]
fn labels_list_and_map_forms_are_read() {
    let spec = web_spec("labels: [a=1, b]", "");
    assert_eq!(spec.labels, Some(env(&[("a", "1"), ("b", "")])));
    let spec = web_spec("labels:\n  a: 1\n  b:", "");
    assert_eq!(spec.labels, Some(env(&[("a", "1"), ("b", "")])));
}

#[test]
fn reserved_label_is_refused_naming_its_path() {
    let e = parse_err(&web("labels:\n  io.deckhand.target: x", ""));
    assert!(
        e.starts_with(
            "`services.web.labels.io.deckhand.target`: keys under `io.deckhand.` are reserved"
        ),
        "{e}"
    );
}

// ---- ports ----

#[test]
fn short_ports_are_kept_as_written() {
    let spec = web_spec(
        "ports:\n  - 8080:80\n  - '127.0.0.1:8443:443/udp'\n  - 9000\n  - '53'",
        "",
    );
    assert_eq!(
        spec.ports,
        Some(strings(&[
            "8080:80",
            "127.0.0.1:8443:443/udp",
            "9000",
            "53"
        ]))
    );
}

#[test]
fn long_form_ports_become_short_strings() {
    let spec = web_spec(
        "ports:
  - {target: 80, published: 8080, host_ip: 127.0.0.1, protocol: tcp, mode: host}
  - {target: 53, published: '5353', protocol: udp}
  - {target: 443, host_ip: '::1'}
  - {target: 9000}",
        "",
    );
    assert_eq!(
        spec.ports,
        Some(strings(&[
            "127.0.0.1:8080:80/tcp",
            "5353:53/udp",
            "[::1]::443",
            "9000"
        ]))
    );
}

#[test]
fn port_range_is_refused_naming_the_item() {
    let e = parse_err(&web("ports: ['8000-8010:8000-8010']", ""));
    assert!(e.starts_with("`services.web.ports[0]`: port ranges"), "{e}");
}

#[test]
fn duplicate_host_port_is_refused_naming_the_compose_path() {
    let e = parse_err(&web("ports: ['8080:80', '8080:81']", ""));
    assert!(
        e.starts_with("`services.web.ports[1]`: host port 8080/tcp is already published"),
        "{e}"
    );
}

// ---- resources ----

#[test]
fn mem_limit_and_cpus_are_read_in_both_forms() {
    let spec = web_spec("mem_limit: 268435456\ncpus: 1.5", "");
    assert_eq!(spec.memory.as_deref(), Some("268435456"));
    assert_eq!(spec.cpus, Some(1.5));
    let spec = web_spec("cpus: '0.25'", "");
    assert_eq!(spec.cpus, Some(0.25));
}

#[test]
fn mem_limit_and_deploy_limit_must_agree() {
    let e = parse_err(&web(
        "mem_limit: 256m\ndeploy:\n  resources:\n    limits:\n      memory: 512m",
        "",
    ));
    assert!(
        e.starts_with("`services.web.deploy.resources.limits.memory`: `512m` disagrees"),
        "{e}"
    );
    let spec = web_spec(
        "mem_limit: 256m\ndeploy:\n  resources:\n    limits:\n      memory: 268435456",
        "",
    );
    assert_eq!(spec.memory.as_deref(), Some("256m"));
}

#[test]
fn memory_below_docker_minimum_is_refused_at_the_compose_path() {
    let e = parse_err(&web("mem_limit: 1m", ""));
    assert!(e.starts_with("`services.web.mem_limit`: "), "{e}");
}

#[test]
fn restart_policy_is_checked() {
    assert_eq!(
        web_spec("restart: on-failure:3", "").restart.as_deref(),
        Some("on-failure:3")
    );
    let e = parse_err(&web("restart: sometimes", ""));
    assert!(
        e.starts_with("`services.web.restart`: unknown restart policy"),
        "{e}"
    );
}

#[test]
fn user_and_working_dir_are_read() {
    let spec = web_spec("user: '1000:1000'\nworking_dir: /srv", "");
    assert_eq!(spec.user.as_deref(), Some("1000:1000"));
    assert_eq!(spec.workdir.as_deref(), Some("/srv"));
    let e = parse_err(&web("working_dir: srv", ""));
    assert!(e.starts_with("`services.web.working_dir`: "), "{e}");
}

#[test]
fn line_break_in_a_value_is_refused_at_the_compose_path() {
    let e = parse_err(&web("environment:\n  A: \"x\\ny\"", ""));
    assert_eq!(
        e,
        "`services.web.environment.A`: line breaks and NUL characters are not allowed"
    );
}

#[test]
fn wrong_type_names_its_path() {
    let e = parse_err(&web("healthcheck:\n  retries: many", ""));
    assert!(
        e.starts_with("`services.web.healthcheck.retries`: invalid type"),
        "{e}"
    );
}

// ---- params ----

#[test]
fn stack_params_are_recognised_by_their_compose_key() {
    assert!(is_stack_params(&json!({"compose": "services: {}"})));
    assert!(!is_stack_params(&json!({"image": "nginx"})));
    assert!(!is_stack_params(&json!("compose")));
}

#[test]
fn stack_params_check_the_file_with_their_env() {
    let params = json!({
        "compose": SHOP,
        "env": {"DB_PASSWORD": "s3cret"},
        "snapshot_volumes": true,
        "health_timeout_s": 120
    });
    let stack = check_stack_params(&params, &Permissions::default()).unwrap();
    assert_eq!(stack.services.len(), 3);
}

#[test]
fn stack_params_name_the_bad_field() {
    let e = check_stack_params(
        &json!({"compose": "x", "health_timeout_s": "soon"}),
        &Permissions::default(),
    )
    .unwrap_err();
    assert!(e.starts_with("`health_timeout_s`: invalid type"), "{e}");
    let e = check_stack_params(
        &json!({"compose": "x", "image": "nginx"}),
        &Permissions::default(),
    )
    .unwrap_err();
    assert!(e.starts_with("`image`: not supported"), "{e}");
    let e = check_stack_params(&json!({"env": {}}), &Permissions::default()).unwrap_err();
    assert_eq!(e, "missing field `compose`");
}

#[test]
fn stack_params_bound_the_env() {
    let many: serde_json::Map<String, serde_json::Value> =
        (0..257).map(|i| (format!("V{i}"), json!("x"))).collect();
    let e = check_stack_params(
        &json!({"compose": web("", ""), "env": many}),
        &Permissions::default(),
    )
    .unwrap_err();
    assert_eq!(e, "`env`: at most 256 variables (got 257)");
    let e = check_stack_params(
        &json!({"compose": web("", ""), "env": {"A=B": "x"}}),
        &Permissions::default(),
    )
    .unwrap_err();
    assert!(e.starts_with("`env.A=B`: "), "{e}");
    let e = check_stack_params(
        &json!({"compose": web("", ""), "env": {"A": "x".repeat(MAX_ENV_VALUE + 1)}}),
        &Permissions::default(),
    )
    .unwrap_err();
    assert!(e.starts_with("`env.A`: at most"), "{e}");
}

const MAX_ENV_VALUE: usize = crate::MAX_ENV_VALUE_BYTES;

#[test]
fn stack_params_check_the_compose_file() {
    let e = check_stack_params(
        &json!({"compose": web("build: .", "")}),
        &Permissions::default(),
    )
    .unwrap_err();
    assert!(e.starts_with("`services.web.build`"), "{e}");
}

#[test]
fn the_variables_a_file_refers_to_are_listed_without_escaped_dollars() {
    let text = "services:\n  web:\n    image: app:${TAG:-${FALLBACK}}\n    command: [\"echo\", \"$$HOME\", \"$USER_NAME\"]\n";
    let names = super::compose_variables(text).unwrap();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    assert_eq!(names, ["FALLBACK", "TAG", "USER_NAME"]);
}
