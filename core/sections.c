/* core/sections.c — schemas of the core's spec keys (see sections.h and
 * docs/spec-reference.md, which `steinlab plugins --markdown` generates from them). */
#include "sections.h"

static const sl_param_def root_defs[] = {
    { "name", SL_PARAM_STRING, 0, "run", -INFINITY, INFINITY, NULL, 0, 0,
      "Run name: the default log file is runs/<name>.h5" },
    { "seed", SL_PARAM_INT, 0, "0", 0, 9007199254740991.0, NULL, 0, 0,
      "Seed of every random number of the run (Philox key)" },
    { "steps", SL_PARAM_INT, 0, "1000", 1, 100000000, NULL, 0, 0,
      "Number of optimisation steps" },
    { "plugin_paths", SL_PARAM_STRING_LIST, 0, "[]", -INFINITY, INFINITY, NULL, 0, 0,
      "Plugin files or directories searched first (relative to the spec's directory)" },
    { "paths_relative_to", SL_PARAM_STRING, 0, NULL, -INFINITY, INFINITY, NULL, 0, 0,
      "Directory that relative paths of this spec start from (itself relative to the spec "
      "file's directory; default: that directory). Sweep cells set it to their source spec's "
      "directory, so a cell spec resolves paths as the sweep spec did" },
};
const sl_param_schema sl_schema_root = SL_PARAM_SCHEMA(root_defs);

const char *const sl_root_sections[] = {
    "prior", "representation", "estimator", "cameras", "optimizer", "log", NULL,
};

static const sl_param_def camera_defs[] = {
    { "mode", SL_PARAM_CHOICE, 0, "orbit", -INFINITY, INFINITY, "orbit|inside_out", 0, 0,
      "orbit: eyes around the target looking at it (objects); inside_out: the eye at the "
      "target looking outward along azimuth/elevation (scenes, rooms)" },
    { "batch_size", SL_PARAM_INT, 0, "1", 1, 256, NULL, 0, 0,
      "Cameras (renders) per step" },
    { "resolution", SL_PARAM_INT, 0, NULL, 1, 4096, NULL, 0, 0,
      "Render size in pixels, square (default: the prior's resolution)" },
    { "elevation_range", SL_PARAM_FLOAT_LIST, 0, "[-10, 45]", -90, 90, NULL, 2, 2,
      "Elevation in degrees, drawn uniformly in [min, max]" },
    { "azimuth_range", SL_PARAM_FLOAT_LIST, 0, "[-180, 180]", -360, 360, NULL, 2, 2,
      "Azimuth in degrees (0 on +x, counter-clockwise), drawn uniformly" },
    { "distance_range", SL_PARAM_FLOAT_LIST, 0, "[1.5, 2.0]", 0.01, 1e6, NULL, 2, 2,
      "Distance from the target, drawn uniformly (orbit mode)" },
    { "fovy_range", SL_PARAM_FLOAT_LIST, 0, "[40, 70]", 1, 179, NULL, 2, 2,
      "Vertical field of view in degrees, drawn uniformly" },
    { "target", SL_PARAM_FLOAT_LIST, 0, "[0, 0, 0]", -1e6, 1e6, NULL, 3, 3,
      "Point the cameras look at (orbit) or look from (inside_out); world, +z up" },
    { "near", SL_PARAM_FLOAT, 0, "0.2", 1e-6, 1e6, NULL, 0, 0, "Near plane distance" },
    { "eval_views", SL_PARAM_INT, 0, "4", 1, 64, NULL, 0, 0,
      "Fixed evaluation cameras, evenly spaced in azimuth starting at 0" },
    { "eval_elevation", SL_PARAM_FLOAT, 0, "15", -90, 90, NULL, 0, 0,
      "Elevation of the evaluation cameras (degrees)" },
    { "eval_distance", SL_PARAM_FLOAT, 0, NULL, 0.01, 1e6, NULL, 0, 0,
      "Distance of the evaluation cameras (default: middle of distance_range)" },
    { "eval_fovy", SL_PARAM_FLOAT, 0, NULL, 1, 179, NULL, 0, 0,
      "Field of view of the evaluation cameras (default: middle of fovy_range)" },
};
const sl_param_schema sl_schema_cameras = SL_PARAM_SCHEMA(camera_defs);

static const sl_param_def optimizer_defs[] = {
    { "lr", SL_PARAM_FLOAT, SL_PARAM_SCHEDULABLE, "0.01", 0, 1e6, NULL, 0, 0,
      "Adam learning rate of every parameter group (groups may override it)" },
    { "betas", SL_PARAM_FLOAT_LIST, 0, "[0.9, 0.99]", 0, 0.999999, NULL, 2, 2,
      "Adam's moment decay rates (beta1, beta2)" },
    { "eps", SL_PARAM_FLOAT, 0, "1e-8", 0, 1, NULL, 0, 0, "Adam's epsilon" },
    { "weight_decay", SL_PARAM_FLOAT, 0, "0", 0, 1e6, NULL, 0, 0,
      "Decoupled weight decay (AdamW), multiplied by the learning rate" },
    { "grad_clip", SL_PARAM_FLOAT, 0, "0", 0, 1e30, NULL, 0, 0,
      "Clip the global gradient norm to this value (0: off)" },
};
const sl_param_schema sl_schema_optimizer = SL_PARAM_SCHEMA(optimizer_defs);

static const sl_param_def optimizer_group_defs[] = {
    { "lr", SL_PARAM_FLOAT, SL_PARAM_SCHEDULABLE, NULL, 0, 1e6, NULL, 0, 0,
      "Learning rate of this group (default: optimizer.lr)" },
    { "weight_decay", SL_PARAM_FLOAT, 0, NULL, 0, 1e6, NULL, 0, 0,
      "Weight decay of this group (default: optimizer.weight_decay)" },
};
const sl_param_schema sl_schema_optimizer_group = SL_PARAM_SCHEMA(optimizer_group_defs);

static const sl_param_def estimator_core_defs[] = {
    { "t_range", SL_PARAM_FLOAT_LIST, SL_PARAM_SCHEDULABLE, "[0.02, 0.98]", 0, 1, NULL, 2, 2,
      "Diffusion time range as fractions of T; t is drawn uniformly from the integers in it" },
    { "weighting", SL_PARAM_CHOICE, 0, "sds", -INFINITY, INFINITY, "sds|uniform|fantasia3d",
      0, 0, "w(t): sds = sigma_t^2, uniform = 1, fantasia3d = alpha_t sigma_t^2" },
    { "noise_samples", SL_PARAM_INT, 0, "1", 1, 256, NULL, 0, 0,
      "(t, eps) draws per render per step; their mean is the step's direction" },
};
const sl_param_schema sl_schema_estimator_core = SL_PARAM_SCHEMA(estimator_core_defs);

static const sl_param_def probe_defs[] = {
    { .name = "every", .type = SL_PARAM_INT, .default_value = "0", .min = 0, .max = 1e8,
      .doc = "Probe every N steps, before the step, at the current parameters (0: no probes)" },
    { .name = "samples", .type = SL_PARAM_INT, .default_value = "16", .min = 2, .max = 65536,
      .doc = "Draws (t, eps) per probe, shared by every probed estimator" },
    { .name = "estimators", .type = SL_PARAM_PLUGIN_LIST, .default_value = "[]",
      .plugin_kind = 3 /* SL_KIND_ESTIMATOR */,
      .doc = "Estimators to probe (NAME or a full estimator section with an optional label; "
             "each shadow-trained on the run's steps); empty: the run's own estimator" },
    { .name = "camera", .type = SL_PARAM_CHOICE, .default_value = "fixed", .choices = "fixed|drawn",
      .doc = "fixed: one camera per probe for all draws; drawn: a camera per draw" },
    { .name = "parameter_space", .type = SL_PARAM_BOOL, .default_value = "true",
      .doc = "Also measure the parameter-space variance (one backward pass per draw)" },
};
static const sl_param_schema probe_schema = SL_PARAM_SCHEMA(probe_defs);

static const sl_param_def log_defs[] = {
    { "path", SL_PARAM_STRING, 0, NULL, -INFINITY, INFINITY, NULL, 0, 0,
      "HDF5 log file (default runs/<name>.h5, relative to the working directory)" },
    { "flush_every", SL_PARAM_INT, 0, "10", 1, 100000000, NULL, 0, 0,
      "Write buffered rows to the file every N steps (readers see them then)" },
    { "render_every", SL_PARAM_INT, 0, "100", 0, 100000000, NULL, 0, 0,
      "Log renders of the evaluation cameras every N steps (0: first and last only)" },
    { "eval_every", SL_PARAM_INT, 0, "100", 0, 100000000, NULL, 0, 0,
      "Evaluate against the prior's ground truth every N steps (0: first and last only)" },
    { "checkpoint_every", SL_PARAM_INT, 0, "100", 0, 100000000, NULL, 0, 0,
      "Write the checkpoint beside the log (RUN.ckpt.h5) every N steps; always at the end "
      "and on SIGINT/SIGTERM (0: only then)" },
    { "progress", SL_PARAM_CHOICE, 0, "auto", -INFINITY, INFINITY, "auto|bar|lines|none", 0,
      0, "Progress display: a bar on a terminal, plain lines otherwise (auto)" },
    { .name = "probes", .type = SL_PARAM_SECTION, .section = &probe_schema,
      .doc = "Variance probes (/probes/LABEL): docs/log-format.md" },
    { "mesh_resolution", SL_PARAM_INT, 0, "96", 0, 1024, NULL, 0, 0,
      "Grid points per axis of the marching-cubes mesh (/mesh) extracted at the end of the "
      "run from a representation with sample_field (0: no mesh, no chamfer)" },
    { "mesh_threshold", SL_PARAM_FLOAT, 0, NULL, -1e30, 1e30, NULL, 0, 0,
      "Density iso-level of the mesh (default: the representation's own, from field_bounds)" },
    { "chamfer_points", SL_PARAM_INT, 0, "10000", 1, 10000000, NULL, 0, 0,
      "Points sampled on the mesh and on the prior's true surface for /eval/chamfer" },
};
const sl_param_schema sl_schema_log = SL_PARAM_SCHEMA(log_defs);
