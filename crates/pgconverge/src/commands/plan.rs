//! `pgconverge plan`: introspects every node and shows what apply would do.

use pgconverge_engine::{plan_file, Cluster};
use pgconverge_plan::render::json::PlanView;
use pgconverge_plan::render::{human, sql};

use crate::cli::{GlobalArgs, PlanArgs};
use crate::config_source::locate_and_load;
use crate::error::{context, CommandError};
use crate::output::use_color;

pub async fn run(global: &GlobalArgs, args: &PlanArgs) -> Result<u8, CommandError> {
    let (_, config) = locate_and_load(global)?;
    let cluster = Cluster::new(config, &global.state)?.with_donor(args.donor.clone());
    let plan = cluster.plan().await?;

    if args.json {
        let view = PlanView::from_plan(&plan);
        let text = serde_json::to_string_pretty(&view).map_err(context("encoding the plan"))?;
        println!("{text}");
    } else if args.sql {
        print!("{}", sql::render(&plan));
    } else {
        let view = human::HumanView {
            color: use_color(global),
            all_body_diffs: args.diff,
        };
        print!("{}", human::render_with(&plan, view));
    }
    if !plan.blockers.is_empty() {
        return Err(CommandError::new(format!(
            "{} prerequisite{} not met; see above",
            plan.blockers.len(),
            if plan.blockers.len() == 1 {
                " is"
            } else {
                "s are"
            }
        )));
    }
    if let Some(out) = &args.out {
        plan_file::write(out, &plan)?;
        if !args.json {
            println!("\nSaved the plan to {}. To perform exactly these actions, run:\n    pgconverge apply {}", out.display(), out.display());
        }
    }
    Ok(if args.detailed_exitcode && plan.has_changes() {
        2
    } else {
        0
    })
}
