//! The plan's executors: fitting and scaling.

use super::Executor;
use std::time::Duration;

const S: fn(u64) -> Duration = Duration::from_secs;

#[test]
fn fit_to_keeps_the_shape_of_a_profile() {
    let mut ramp = Executor::RampingVus {
        start_vus: 0,
        stages: vec![(S(60), 100.0), (S(180), 1000.0), (S(60), 0.0)],
    };
    ramp.fit_to(S(30));
    let Executor::RampingVus { stages, .. } = &ramp else {
        unreachable!()
    };
    assert_eq!(
        stages.iter().map(|(d, t)| (*d, *t)).collect::<Vec<_>>(),
        vec![(S(6), 100.0), (S(18), 1000.0), (S(6), 0.0)]
    );
    let mut users = Executor::Users {
        users: 20_000,
        ramp_up: S(60),
        duration: S(300),
        rate_per_user: 0.5,
    };
    users.fit_to(S(30));
    assert!(matches!(
        users,
        Executor::Users { users: 20_000, ramp_up, duration, .. } if ramp_up == S(6) && duration == S(30)
    ));
    let mut rate = Executor::ConstantArrivalRate {
        rate: 10.0,
        duration: S(60),
        max_vus: 5,
    };
    rate.fit_to(S(20));
    assert_eq!(rate.duration(), S(20));
}

#[test]
fn scale_load_multiplies_users_and_rates_not_times() {
    let mut ramp = Executor::RampingArrivalRate {
        start_rate: 10.0,
        stages: vec![(S(60), 100.0)],
        max_vus: 50,
    };
    ramp.scale_load(2.0);
    assert!(matches!(
        &ramp,
        Executor::RampingArrivalRate { start_rate, stages, max_vus: 100 }
            if *start_rate == 20.0 && stages == &vec![(S(60), 200.0)]
    ));
    let mut users = Executor::Users {
        users: 20_000,
        ramp_up: S(60),
        duration: S(300),
        rate_per_user: 0.5,
    };
    users.scale_load(1.5);
    assert!(matches!(
        users,
        Executor::Users { users: 30_000, rate_per_user, duration, .. }
            if rate_per_user == 0.5 && duration == S(300)
    ));
    let mut vus = Executor::ConstantVus {
        vus: 1,
        duration: S(10),
    };
    vus.scale_load(0.1);
    assert!(matches!(vus, Executor::ConstantVus { vus: 1, .. }));
}

#[test]
fn shared_iterations_are_read_from_a_scenario_file() {
    let plan = |executor: &str| {
        crate::parse(
            &format!(
                "base_url = \"http://127.0.0.1:1\"\n[[scenarios]]\nname = \"s\"\nflow = \"f\"\n{executor}\n[[flows]]\nname = \"f\"\nsteps = [{{ name = \"a\", url = \"/\" }}]\n"
            ),
            "plan.toml",
            std::path::Path::new("."),
        )
    };
    let p =
        plan("executor = \"shared-iterations\"\nvus = 4\niterations = 100\nmax_duration = \"30s\"")
            .unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(
        p.scenarios[0].executor,
        Executor::SharedIterations { vus: 4, iterations: 100, max_duration } if max_duration == S(30)
    ));
    let mut scaled = p.scenarios[0].executor.clone();
    scaled.scale_load(2.0);
    assert!(matches!(
        scaled,
        Executor::SharedIterations {
            vus: 8,
            iterations: 200,
            ..
        }
    ));
    for bad in [
        "executor = \"shared-iterations\"\nvus = 4",
        "executor = \"shared-iterations\"\niterations = 0",
        "executor = \"constant-vus\"\nvus = 1\nduration = \"1s\"\niterations = 5",
    ] {
        assert!(plan(bad).is_err(), "{bad}");
    }
}
