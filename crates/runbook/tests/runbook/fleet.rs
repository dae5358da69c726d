//! deploy_node_fleet: rendering for each implementation from a real getversion answer,
//! validation of every value, and writing without overwriting.

use std::collections::BTreeSet;

use neo_ir_runbook::fleet::{plan, MAINNET_MAGIC};
use neo_ir_runbook::{
    fetch_protocol, render_fleet, write_fleet, FleetError, FleetSpec, GenesisTiming,
    Implementation, Network, Protocol, RenderedFile,
};
use serde_json::Value;

use super::{network, prober, targets};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/");

/// The protocol of MainNet as a neo-cli 3.10.1 node reports it.
fn mainnet() -> Protocol {
    let text = std::fs::read_to_string(format!(
        "{FIXTURES}mainnet-getversion/getversion-csharp.json"
    ))
    .unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    Protocol::from_getversion(&v["result"], None, "getversion of a MainNet node").unwrap()
}

fn file<'a>(files: &'a [RenderedFile], path: &str) -> &'a str {
    &files
        .iter()
        .find(|f| f.path == path)
        .unwrap_or_else(|| {
            panic!(
                "no {path} in {:?}",
                files.iter().map(|f| &f.path).collect::<Vec<_>>()
            )
        })
        .contents
}

#[test]
fn the_protocol_comes_from_getversion_with_the_configured_timing() {
    let p = mainnet();
    assert_eq!(p.network, MAINNET_MAGIC);
    assert_eq!(
        (p.ms_per_block, p.max_traceable_blocks),
        (15_000, 2_102_400)
    );
    assert_eq!(p.validators_count, 7);
    assert_eq!(p.standby_committee.len(), 21);
    assert_eq!(p.max_transactions_per_block, 200);
    assert_eq!(p.hardforks.len(), 7);
    assert_eq!(p.hardforks[6].name, "Gorgon");
    assert_eq!(p.hardforks[6].height, 12_020_000);
    assert_eq!(p.seed_list.len(), 5);
}

#[test]
fn neo_cli_fleet_of_three() {
    let spec = FleetSpec::new(3, Implementation::NeoCli, mainnet());
    let files = render_fleet(&spec).unwrap();
    let paths: BTreeSet<&str> = files.iter().map(|f| f.path.as_str()).collect();
    for i in 1..=3 {
        assert!(paths.contains(format!("neo-rpc-{i}/config.json").as_str()));
        assert!(paths.contains(format!("neo-rpc-{i}/Plugins/RpcServer/RpcServer.json").as_str()));
        assert!(paths.contains(format!("systemd/neo-rpc-{i}.service").as_str()));
    }
    assert!(paths.contains("nginx/neo_rpc.conf") && paths.contains("README.txt"));
    assert_eq!(files.len(), 3 * 3 + 2);

    let mut p2p = BTreeSet::new();
    let mut rpc = BTreeSet::new();
    for i in 1..=3 {
        let config: Value =
            serde_json::from_str(file(&files, &format!("neo-rpc-{i}/config.json"))).unwrap();
        let app = &config["ApplicationConfiguration"];
        p2p.insert(app["P2P"]["Port"].as_u64().unwrap());
        assert_eq!(
            app["Storage"]["Path"],
            format!("/var/lib/neo-ir-fleet/neo-rpc-{i}/chain")
        );
        let proto = &config["ProtocolConfiguration"];
        assert_eq!(proto["Network"], 860_833_102);
        assert_eq!(proto["MillisecondsPerBlock"], 15_000);
        assert_eq!(proto["MaxTransactionsPerBlock"], 200);
        assert_eq!(proto["Hardforks"]["HF_Aspidochelone"], 1_730_000);
        assert_eq!(proto["Hardforks"]["HF_Gorgon"], 12_020_000);
        assert_eq!(proto["StandbyCommittee"].as_array().unwrap().len(), 21);
        assert_eq!(proto["SeedList"][0], "seed1.neo.org:10333");
        let server: Value = serde_json::from_str(file(
            &files,
            &format!("neo-rpc-{i}/Plugins/RpcServer/RpcServer.json"),
        ))
        .unwrap();
        let s = &server["PluginConfiguration"]["Servers"][0];
        assert_eq!(s["Network"], 860_833_102);
        assert_eq!(s["BindAddress"], "127.0.0.1");
        rpc.insert(s["Port"].as_u64().unwrap());

        let unit = file(&files, &format!("systemd/neo-rpc-{i}.service"));
        let dir = format!("/var/lib/neo-ir-fleet/neo-rpc-{i}");
        assert!(
            unit.contains(&format!(
                "ExecStart={dir}/neo-cli --config {dir}/config.json --background\n"
            )),
            "{unit}"
        );
        for line in [
            "User=neo\n",
            &format!("WorkingDirectory={dir}\n"),
            "Restart=on-failure\n",
            "LimitNOFILE=65536\n",
            "MemoryMax=8192M\n",
            "WantedBy=multi-user.target\n",
        ] {
            assert!(unit.contains(line), "{line} missing in {unit}");
        }
    }
    assert_eq!(rpc, BTreeSet::from([10400, 10401, 10402]));
    assert_eq!(p2p, BTreeSet::from([10500, 10501, 10502]));

    let nginx = file(&files, "nginx/neo_rpc.conf");
    assert!(nginx.contains("upstream neo_rpc {"), "{nginx}");
    let upstreams: Vec<&str> = nginx
        .lines()
        .filter(|l| l.trim_start().starts_with("server 127.0.0.1:"))
        .collect();
    assert_eq!(upstreams.len(), 3, "{nginx}");
    for port in 10400..=10402 {
        assert!(
            nginx.contains(&format!("server 127.0.0.1:{port} ")),
            "{nginx}"
        );
    }
    assert!(nginx.contains("listen 10332;") && nginx.contains("proxy_pass http://neo_rpc;"));

    let readme = file(&files, "README.txt");
    assert!(readme.contains("changed nothing"), "{readme}");
    assert!(
        readme.contains(
            "sudo systemctl enable --now neo-rpc-1.service neo-rpc-2.service neo-rpc-3.service"
        ),
        "{readme}"
    );
    assert!(
        readme.contains("sudo cp -a /opt/neo-cli/. /var/lib/neo-ir-fleet/neo-rpc-1/"),
        "{readme}"
    );
    assert!(readme.contains("getversion of a MainNet node"), "{readme}");
}

#[test]
fn neo_go_and_neo_rs_fleets_in_their_own_formats() {
    let spec = FleetSpec {
        first_rpc_port: 20100,
        first_p2p_port: 20200,
        lb_port: 8080,
        seed_list: vec!["10.0.0.5:10333".into(), "Seed2.Example.org:10333".into()],
        ..FleetSpec::new(3, Implementation::NeoGo, mainnet())
    };
    let files = render_fleet(&spec).unwrap();
    assert_eq!(files.len(), 3 * 2 + 2);
    let yml = file(&files, "neo-rpc-2/protocol.mainnet.yml");
    for line in [
        "  Magic: 860833102\n",
        "  TimePerBlock: 15000ms\n",
        "  InitialGASSupply: 52000000\n",
        "  MaxTransactionsPerBlock: 200\n",
        "  ValidatorsCount: 7\n",
        "    - 10.0.0.5:10333\n",
        "    - seed2.example.org:10333\n",
        "    Gorgon: 12020000\n",
        "      DataDirectoryPath: \"/var/lib/neo-ir-fleet/neo-rpc-2/chain\"\n",
        "      - \":20201\"\n",
        "      - \"127.0.0.1:20101\"\n",
    ] {
        assert!(yml.contains(line), "{line:?} missing in\n{yml}");
    }
    assert!(
        !yml.contains("HF_"),
        "neo-go names hardforks without the prefix"
    );
    let unit = file(&files, "systemd/neo-rpc-2.service");
    assert!(
        unit.contains("ExecStart=/usr/local/bin/neo-go node --config-path /var/lib/neo-ir-fleet/neo-rpc-2 --mainnet\n"),
        "{unit}"
    );
    let nginx = file(&files, "nginx/neo_rpc.conf");
    assert_eq!(nginx.matches("server 127.0.0.1:").count(), 3);
    assert!(nginx.contains("listen 8080;"));

    let spec = FleetSpec::new(2, Implementation::NeoRs, mainnet());
    let files = render_fleet(&spec).unwrap();
    let text = file(&files, "neo-rpc-1/neo-node.toml");
    let toml: toml::Table = toml::from_str(text).unwrap();
    assert_eq!(toml["network"]["network_type"].as_str(), Some("MainNet"));
    assert_eq!(
        toml["network"]["network_magic"].as_integer(),
        Some(860_833_102)
    );
    assert_eq!(toml["p2p"]["port"].as_integer(), Some(10500));
    assert_eq!(toml["rpc"]["port"].as_integer(), Some(10400));
    assert_eq!(toml["rpc"]["bind_address"].as_str(), Some("127.0.0.1"));
    assert_eq!(toml["p2p"]["seed_nodes"].as_array().unwrap().len(), 5);
    assert!(file(&files, "systemd/neo-rpc-2.service")
        .contains("ExecStart=/usr/local/bin/neo-node --config /var/lib/neo-ir-fleet/neo-rpc-2/neo-node.toml\n"));
}

#[tokio::test]
async fn a_private_network_from_a_live_node() {
    let net = network().await;
    let p = prober();
    let node = &targets(&net)[4];
    // the simulator activates every hardfork at 0, Echidna included: the reported block time
    // is policy, so the configured one must be given
    let e = fetch_protocol(&p, node, None).await.unwrap_err();
    assert!(matches!(e, FleetError::Protocol(_)), "{e}");
    assert!(e.to_string().contains("Echidna"), "{e}");
    let timing = GenesisTiming {
        ms_per_block: 200,
        max_traceable_blocks: 2_102_400,
    };
    let protocol = fetch_protocol(&p, node, Some(timing)).await.unwrap();
    assert_eq!(protocol.network, 5_195_086);
    assert_eq!(protocol.validators_count, 4);
    assert_eq!(protocol.seed_list.len(), 4);
    let spec = FleetSpec::new(2, Implementation::NeoGo, protocol.clone());
    assert_eq!(spec.network, Network::Custom(5_195_086));
    let files = render_fleet(&spec).unwrap();
    let yml = file(&files, "neo-rpc-1/protocol.privnet.yml");
    assert!(
        yml.contains("  Magic: 5195086\n") && yml.contains("TimePerBlock: 200ms"),
        "{yml}"
    );
    assert!(file(&files, "systemd/neo-rpc-1.service")
        .contains("node --config-path /var/lib/neo-ir-fleet/neo-rpc-1\n"));
    let cli = render_fleet(&FleetSpec::new(2, Implementation::NeoCli, protocol.clone())).unwrap();
    let config: Value = serde_json::from_str(file(&cli, "neo-rpc-2/config.json")).unwrap();
    assert_eq!(config["ProtocolConfiguration"]["ValidatorsCount"], 4);
    // neo-rs has presets for MainNet and TestNet only
    let e = render_fleet(&FleetSpec::new(2, Implementation::NeoRs, protocol)).unwrap_err();
    assert!(matches!(e, FleetError::Unsupported(_)), "{e}");
    assert!(e.to_string().contains("neo-cli or neo-go"), "{e}");
}

#[test]
fn invalid_values_never_reach_a_file() {
    let base = FleetSpec::new(3, Implementation::NeoCli, mainnet());
    let cases: Vec<(&str, FleetSpec)> = vec![
        (
            "count",
            FleetSpec {
                count: 0,
                ..base.clone()
            },
        ),
        (
            "count",
            FleetSpec {
                count: 65,
                ..base.clone()
            },
        ),
        (
            "name_prefix",
            FleetSpec {
                name_prefix: "Neo_RPC".into(),
                ..base.clone()
            },
        ),
        (
            "name_prefix",
            FleetSpec {
                name_prefix: "rpc;rm -rf".into(),
                ..base.clone()
            },
        ),
        (
            "name_prefix",
            FleetSpec {
                name_prefix: "../etc".into(),
                ..base.clone()
            },
        ),
        (
            "name_prefix",
            FleetSpec {
                name_prefix: "rpc-".into(),
                ..base.clone()
            },
        ),
        (
            "first_p2p_port",
            FleetSpec {
                first_p2p_port: 10402,
                ..base.clone()
            },
        ),
        (
            "first_rpc_port",
            FleetSpec {
                first_rpc_port: 80,
                ..base.clone()
            },
        ),
        (
            "first_rpc_port",
            FleetSpec {
                first_rpc_port: 65534,
                ..base.clone()
            },
        ),
        (
            "lb_port",
            FleetSpec {
                lb_port: 10401,
                ..base.clone()
            },
        ),
        (
            "seed_list",
            FleetSpec {
                seed_list: vec!["$(id):10333".into()],
                ..base.clone()
            },
        ),
        (
            "seed_list",
            FleetSpec {
                seed_list: vec!["seed1.neo.org".into()],
                ..base.clone()
            },
        ),
        (
            "data_root",
            FleetSpec {
                data_root: "var/lib/neo".into(),
                ..base.clone()
            },
        ),
        (
            "data_root",
            FleetSpec {
                data_root: "/var/lib/../../etc".into(),
                ..base.clone()
            },
        ),
        (
            "data_root",
            FleetSpec {
                data_root: "/var/lib/neo fleet".into(),
                ..base.clone()
            },
        ),
        (
            "binary",
            FleetSpec {
                binary: "neo-cli".into(),
                ..base.clone()
            },
        ),
        (
            "binary",
            FleetSpec {
                binary: "/opt/neo-cli/neo-cli;id".into(),
                ..base.clone()
            },
        ),
        (
            "user",
            FleetSpec {
                user: "root".into(),
                ..base.clone()
            },
        ),
        (
            "user",
            FleetSpec {
                user: "neo user".into(),
                ..base.clone()
            },
        ),
        (
            "network",
            FleetSpec {
                network: Network::Testnet,
                ..base.clone()
            },
        ),
        (
            "memory_max_mib",
            FleetSpec {
                memory_max_mib: 1,
                ..base.clone()
            },
        ),
    ];
    for (field, spec) in cases {
        match render_fleet(&spec) {
            Err(FleetError::Invalid { field: f, reason }) => {
                assert_eq!(f, field, "{reason}");
            }
            other => panic!("{field}: expected invalid, got {other:?}"),
        }
    }
    let mut bad_key = mainnet();
    bad_key.standby_committee[3] = "04deadbeef".into();
    assert!(matches!(
        render_fleet(&FleetSpec::new(1, Implementation::NeoGo, bad_key)),
        Err(FleetError::Invalid { field, .. }) if field == "protocol.standby_committee"
    ));
    let mut bad_fork = mainnet();
    bad_fork.hardforks[0].name = "Basilisk\": 0, \"HF_X".into();
    assert!(render_fleet(&FleetSpec::new(1, Implementation::NeoCli, bad_fork)).is_err());
    assert!(Implementation::parse("neo-python")
        .unwrap_err()
        .to_string()
        .contains("neo-cli, neo-go and neo-rs"));
    assert_eq!(
        Network::parse("0x004F454E").unwrap(),
        Network::Custom(5_195_086)
    );
    assert_eq!(Network::parse("860833102").unwrap(), Network::Mainnet);
    assert!(Network::parse("main").is_err());
}

#[test]
fn writing_refuses_to_overwrite_and_to_leave_the_directory() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("fleet");
    let files = render_fleet(&FleetSpec::new(2, Implementation::NeoCli, mainnet())).unwrap();
    write_fleet(&files, &out, false).unwrap();
    for f in &files {
        assert_eq!(
            std::fs::read_to_string(out.join(&f.path)).unwrap(),
            f.contents
        );
    }
    // again: refused, and nothing is touched
    std::fs::write(out.join("README.txt"), "mine").unwrap();
    match write_fleet(&files, &out, false) {
        Err(FleetError::Exists(paths)) => {
            assert_eq!(paths.len(), files.len());
            assert!(paths.contains(&"README.txt".to_string()));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        std::fs::read_to_string(out.join("README.txt")).unwrap(),
        "mine"
    );
    write_fleet(&files, &out, true).unwrap();
    assert_ne!(
        std::fs::read_to_string(out.join("README.txt")).unwrap(),
        "mine"
    );
    // no leftovers of the write-then-rename
    let names: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(names.iter().all(|n| !n.ends_with(".tmp")), "{names:?}");

    for bad in ["../escape.txt", "/etc/passwd", "a/../../b", "a//b", ""] {
        let f = RenderedFile {
            path: bad.to_string(),
            contents: "x".into(),
        };
        assert!(
            matches!(
                write_fleet(&[f], &out, true),
                Err(FleetError::Invalid { .. })
            ),
            "{bad}"
        );
    }
    assert!(!dir.path().join("escape.txt").exists());
    #[cfg(unix)]
    {
        let elsewhere = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(elsewhere.path(), out.join("link")).unwrap();
        let f = RenderedFile {
            path: "link/x.txt".to_string(),
            contents: "x".into(),
        };
        assert!(matches!(
            write_fleet(&[f], &out, true),
            Err(FleetError::Invalid { .. })
        ));
        assert!(!elsewhere.path().join("x.txt").exists());
    }
}

#[test]
fn the_plan_renders_and_leaves_applying_to_the_operator() {
    let spec = FleetSpec::new(3, Implementation::NeoGo, mainnet());
    let p = plan(&spec, "/tmp/fleet");
    assert!(!p.destructive());
    assert_eq!(p.steps.len(), 1);
    let text = p.describe();
    assert!(text.contains("under /tmp/fleet"), "{text}");
    assert!(
        text.contains("neo-ir renders the files and changes nothing"),
        "{text}"
    );
    assert!(
        text.contains("suggested: sudo systemctl enable --now neo-rpc-1.service"),
        "{text}"
    );
    assert!(
        text.contains("suggested: sudo systemctl reload nginx"),
        "{text}"
    );
    assert!(!text.contains("cp -a"), "only neo-cli copies its release");
}
