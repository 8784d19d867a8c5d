// SPDX-License-Identifier: Apache-2.0
#include "densa/app/cli.hpp"

#include "densa/app/adsl.hpp"
#include "densa/app/commands.hpp"
#include "densa/app/exit_codes.hpp"
#include "densa/app/pretrain.hpp"
#include "densa/app/train.hpp"
#include "densa/core/error.hpp"
#include "densa/models/error.hpp"
#include "densa/models/runtime.hpp"

#include "model_cmd.hpp"

#include <CLI/CLI.hpp>

#include <iostream>

namespace densa::app {

namespace {

constexpr const char* kFooter = R"(
Exit codes: 0 ok, 1 usage error, 2 bad input, 3 some cases failed, 4 internal error.
Geometry is reported in millimetres in the LPS frame (DICOM/ITK); CT values in HU.
Documentation: README.md. Report bugs with the output of `densa --version`.)";

} // namespace

int runCli(int argc, char** argv) {
  CLI::App cli{"Densa — liver and liver-tumour segmentation of CT, native and offline.", "densa"};
  cli.footer(kFooter);
  cli.require_subcommand(0, 1);
  bool showVersion = false;
  int threads = 0;
  cli.add_flag("--version", showVersion, "Print the version, git hash and library versions");
  cli.add_option("--threads", threads, "CPU threads for LibTorch and decoding (default: all cores)")
      ->check(CLI::NonNegativeNumber);

  InfoOptions info;
  auto* infoCmd = cli.add_subcommand(
      "info",
      "Describe every volume or DICOM series found at PATH: size, spacing (mm), orientation, "
      "HU range, warnings.\nExample: densa info /data/ct_folder --json");
  infoCmd
      ->add_option("PATH",
                   info.input,
                   "An image file (.nii/.nii.gz/.nrrd/.nhdr/.mha/.mhd), a "
                   "DICOM file, or a folder searched recursively")
      ->required();
  infoCmd->add_flag("--json", info.json, "Machine-readable JSON on stdout");
  infoCmd->add_flag("--headers-only",
                    info.headersOnly,
                    "Read DICOM headers only (fast; no HU range or geometry checks)");
  infoCmd->add_flag("--resample-irregular",
                    info.resampleIrregular,
                    "Interpolate series with missing slices or uneven spacing instead of failing");
  infoCmd->add_flag("!--no-tilt-correction",
                    info.correctTilt,
                    "Refuse gantry-tilted series instead of resampling them");

  ConvertOptions convert;
  auto* convertCmd = cli.add_subcommand(
      "convert",
      "Convert any supported input (DICOM folder/file, NIfTI, NRRD, MetaImage) to NIfTI, NRRD or "
      "MetaImage, keeping geometry exactly.\nExample: densa convert /data/dicom_series ct.nii.gz");
  convertCmd->add_option("IN", convert.input, "Input file or DICOM folder")->required();
  convertCmd
      ->add_option("OUT", convert.output, "Output file: .nii, .nii.gz, .nrrd, .nhdr, .mha, .mhd")
      ->required();
  convertCmd->add_option("--series",
                         convert.series,
                         "DICOM series to convert: its id/SeriesInstanceUID or its index in "
                         "`densa info` (default: the CT series chosen by rules)");
  convertCmd->add_flag(
      "--resample-irregular",
      convert.resampleIrregular,
      "Interpolate series with missing slices or uneven spacing instead of failing");
  convertCmd->add_flag("!--no-tilt-correction",
                       convert.correctTilt,
                       "Refuse gantry-tilted series instead of resampling them");

  PhantomOptions phantom;
  auto* phantomCmd = cli.add_subcommand(
      "phantom",
      "Write synthetic abdominal CT phantoms (clearly marked SYNTHETIC) as DICOM series plus NIfTI "
      "label maps (0 background, 1 liver, 2 tumour).\nExample: densa phantom -o phantoms --cases "
      "3");
  phantomCmd->add_option("-o,--output", phantom.output, "Output folder")->required();
  phantomCmd->add_option("--cases", phantom.cases, "Number of cases")->check(CLI::Range(1, 10000));
  phantomCmd->add_option("--seed", phantom.seed, "Random seed (same seed, same phantoms)");
  phantomCmd->add_option("--size", phantom.size, "In-plane matrix size")
      ->check(CLI::Range(32, 1024));
  phantomCmd->add_option("--slices", phantom.slices, "Number of slices")
      ->check(CLI::Range(1, 2000));
  phantomCmd
      ->add_option("--spacing-xy", phantom.spacingXY, "In-plane spacing in mm (default: varies)")
      ->check(CLI::Range(0.0, 10.0));
  phantomCmd->add_option("--spacing-z", phantom.spacingZ, "Slice spacing in mm")
      ->check(CLI::Range(0.1, 20.0));

  SegmentOptions segment;
  auto* segmentCmd = cli.add_subcommand(
      "segment",
      "Segment liver (label 1) and liver tumours (label 2) in every CT found at INPUT. Per case in "
      "OUT/<case>/: label.nii.gz on the input grid, seg.dcm (DICOM SEG, for DICOM input), "
      "report.json "
      "(liver volume mL, tumour burden, lesion table), preview.png (--preview); per run: "
      "cohort.csv "
      "and manifest.json.\nExample: densa segment -i /data/ct_archive -o results --preview");
  segmentCmd
      ->add_option("-i,--input",
                   segment.input,
                   "A DICOM folder tree (every CT series is a case), an image file, a folder of "
                   "image files, or a CSV list of paths")
      ->required();
  segmentCmd->add_option("-o,--output", segment.output, "Output folder")->required();
  segmentCmd->add_option(
      "--model",
      segment.model,
      "Segmentation checkpoint: H-DenseUNet ('hdenseunet') or GEMINI transfer ('gemini-unet') "
      "(default: the bundled model)");
  segmentCmd->add_option(
      "--coarse-model",
      segment.coarseModel,
      "Stage-0 coarse liver checkpoint for H-DenseUNet (default: <model>.coarse.densa if "
      "present)");
  segmentCmd->add_option("--device", segment.device, "cpu, cuda or cuda:N");
  segmentCmd->add_flag(
      "--continue", segment.resume, "Skip cases finished earlier with the same model");
  segmentCmd->add_flag("--overwrite", segment.overwrite, "Replace the outputs of finished cases");
  segmentCmd->add_option(
      "--series", segment.series, "Only the DICOM series with this id or SeriesInstanceUID");
  segmentCmd->add_flag("--no-seg", segment.noSeg, "Do not write DICOM SEG files");
  segmentCmd->add_flag(
      "--preview", segment.preview, "Write a PNG montage with the overlay per case");
  segmentCmd
      ->add_option("--liver-threshold",
                   segment.liverThreshold,
                   "p(liver) threshold (H-DenseUNet: model card default 0.5; GEMINI: argmax "
                   "unless given)")
      ->check(CLI::Range(0.0, 1.0));
  segmentCmd
      ->add_option("--tumour-threshold",
                   segment.tumourThreshold,
                   "p(tumour) threshold (H-DenseUNet: model card default 0.9; GEMINI: argmax "
                   "unless given)")
      ->check(CLI::Range(0.0, 1.0));
  segmentCmd
      ->add_option("--min-lesion-ml",
                   segment.minLesionMl,
                   "Report only lesions of at least this volume in mL; smaller ones become liver "
                   "(default 0: keep all, as the LiTS scorer does)")
      ->check(CLI::NonNegativeNumber);
  segmentCmd
      ->add_option_function<std::string>(
          "--roi",
          [&segment](const std::string& v) { segment.liverBox = v == "liver-box"; },
          "Where the H-DenseUNet windows run: 'full' slices (the reference code; default) or "
          "'liver-box', the box around the coarse liver mask plus 15 mm (the paper; several "
          "times faster). Without a coarse model the 2D branch's liver prediction is the mask")
      ->check(CLI::IsMember({"full", "liver-box"}));
  segmentCmd
      ->add_option(
          "--in-plane-mm",
          segment.inPlaneMm,
          "H-DenseUNet: resample axial slices whose pixel spacing is more than 25% off this "
          "(mm) to it before the network; labels are mapped back onto the input grid. 0: "
          "never (native slices, as the reference). Default: the model card's policy "
          "(bundled model: native)")
      ->check(CLI::NonNegativeNumber);
  segmentCmd
      ->add_option("--precision",
                   segment.precision,
                   "H-DenseUNet arithmetic: 'auto' (default: bf16 on CPUs with AMX or "
                   "AVX512-BF16, fp32 elsewhere and on GPUs), 'fp32' (the reference) or 'bf16' "
                   "(bfloat16 weights and activations, about 2.5x faster on such CPUs; liver masks "
                   "agreed with fp32 to Dice 0.9996 on a real CT and >= 0.98 in our tests; refused "
                   "on CPUs without them). report.json records the one used")
      ->check(CLI::IsMember({"auto", "fp32", "bf16"}));
  segmentCmd->add_flag(
      "--resample-irregular",
      segment.resampleIrregular,
      "Interpolate series with missing slices or uneven spacing instead of failing");
  segmentCmd->add_flag("!--no-tilt-correction",
                       segment.correctTilt,
                       "Refuse gantry-tilted series instead of resampling them");
  segmentCmd->get_option("--continue")->excludes(segmentCmd->get_option("--overwrite"));

  TrainCommand train;
  auto* trainCmd = cli.add_subcommand(
      "train",
      "Train H-DenseUNet stage by stage (coarse, 2d, 3dpart, end2end) from a YAML config into a "
      "run folder "
      "(config.yaml, metrics.csv, train.log, report.html, last.densa, best.densa, "
      "state.pt).\nExample: "
      "densa train --config data/models/default-train.yaml -o runs/default");
  trainCmd->add_option("--config", train.config, "YAML training configuration");
  trainCmd->add_option("-o,--output", train.runDir, "Run folder (default: runs/<config name>)");
  trainCmd->add_option(
      "--resume", train.resume, "Continue the run in this folder exactly where it stopped");
  trainCmd->add_option(
      "--set", train.overrides, "Override a config key, e.g. --set steps=500 (repeatable)");

  TrainCommand adslTrain;
  auto* adslTrainCmd = trainCmd->add_subcommand(
      "adsl",
      "Train ADSL (attention-based dynamic subspace learners) for similar-case retrieval on CT "
      "patches centred on labelled structures: learners split on held-out NMI plateaus, margin "
      "loss, k-means re-clustering. Run folder: config.yaml, metrics.csv, report.html, "
      "retrieval.json (Recall@1/2/4/8, NMI, per class), best.densa, last.densa, "
      "state.pt.\nExample: densa train adsl --config data/models/adsl-organs.yaml -o runs/adsl");
  adslTrainCmd->add_option("--config", adslTrain.config, "YAML configuration (see README)");
  adslTrainCmd->add_option(
      "-o,--output", adslTrain.runDir, "Run folder (default: runs/adsl-<config name>)");
  adslTrainCmd->add_option(
      "--resume", adslTrain.resume, "Continue the run in this folder at its last epoch");
  adslTrainCmd->add_option(
      "--set", adslTrain.overrides, "Override a config key, e.g. --set epochs=20 (repeatable)");

  IndexCommand index;
  auto* indexCmd = cli.add_subcommand(
      "index",
      "Build and maintain a similar-case index (Faiss vectors + SQLite catalog) with an ADSL "
      "model.\nExample: densa index add CT_ROOT --model runs/adsl/best.densa --index cases.idx");
  indexCmd->require_subcommand(1);
  auto* indexAddCmd = indexCmd->add_subcommand(
      "add",
      "Embed every CT under ROOT (series, NIfTI/NRRD/MHA files, CSV list): body tiles on slices "
      "every --slice-step mm and their mean as the case vector. A case already in the index is "
      "replaced.");
  indexAddCmd->add_option("ROOT", index.input, "CT file, DICOM folder or folder tree")->required();
  indexAddCmd->add_option("--model", index.model, "An adsl checkpoint (densa train adsl)")
      ->required();
  indexAddCmd->add_option("--index", index.index, "Index folder (created when missing)")
      ->required();
  indexAddCmd->add_option("--slice-step", index.sliceStepMm, "Tile slices every this many mm")
      ->check(CLI::PositiveNumber);
  indexAddCmd->add_option("--device", index.device, "cpu or cuda");
  auto* indexRemoveCmd = indexCmd->add_subcommand("remove", "Remove cases by id.");
  indexRemoveCmd->add_option("CASE", index.caseIds, "Case ids (densa index info lists them)")
      ->required();
  indexRemoveCmd->add_option("--index", index.index, "Index folder")->required();
  auto* indexRebuildCmd = indexCmd->add_subcommand(
      "rebuild", "Rebuild the vector index from the catalog (after damage or many removals).");
  indexRebuildCmd->add_option("--index", index.index, "Index folder")->required();
  auto* indexInfoCmd = indexCmd->add_subcommand("info", "Print the index's model, cases, units.");
  indexInfoCmd->add_option("--index", index.index, "Index folder")->required();

  SearchCommand search;
  auto* searchCmd = cli.add_subcommand(
      "search",
      "Find similar cases: QUERY is a CT (compared case to case), a CT with --point or --roi "
      "(a patch around it compared with every indexed tile), or a 2D image (one slice, in HU). "
      "Ranked cases with scores; -o writes attention maps (PNG, NIfTI) and "
      "results.json.\nExample: densa search new_ct/ --index cases.idx -k 5 -o similar/");
  searchCmd->add_option("QUERY", search.query, "CT file, DICOM folder or 2D image")->required();
  searchCmd->add_option("--index", search.index, "Index folder")->required();
  searchCmd->add_option("-k", search.k, "Number of cases to return")->check(CLI::PositiveNumber);
  searchCmd->add_option("--model", search.model, "Default: the model the index was built with");
  searchCmd->add_option("--point", search.pointMm, "Patch centre x,y,z in LPS mm")
      ->delimiter(',')
      ->expected(3);
  searchCmd->add_option("--roi", search.roi, "Label map whose structure centres the query patch");
  searchCmd->add_option("--roi-label", search.roiLabel, "Label value of the ROI (default 1 and 2)");
  searchCmd->add_option("--slice-step", search.sliceStepMm, "Tile slices every this many mm")
      ->check(CLI::PositiveNumber);
  searchCmd->add_flag("--json", search.json, "Machine-readable JSON on stdout");
  searchCmd->add_option("-o,--output", search.output, "Folder for attention maps and results.json");
  searchCmd->add_option("--device", search.device, "cpu or cuda");

  PretrainCommand pretrain;
  auto* pretrainCmd = cli.add_subcommand(
      "pretrain", "Self-supervised pretraining on unlabelled CT (methods: gemini).");
  pretrainCmd->require_subcommand(1);
  auto* geminiCmd = pretrainCmd->add_subcommand(
      "gemini",
      "GEMINI dense contrastive pretraining with a homeomorphism prior: pairs of different CTs, "
      "random crops, a learned deformable map between them, corresponding voxels as positive "
      "pairs, plus self-restoration (GEMINI-MIP). Run folder: config.yaml, metrics.csv, "
      "train.log, report.html, last.densa (usable by densa register), state.pt.\nExample: densa "
      "pretrain gemini --config my-gemini.yaml -o runs/gemini --set steps=500");
  geminiCmd->add_option("--config", pretrain.config, "YAML configuration (see README)");
  geminiCmd->add_option(
      "-o,--output", pretrain.runDir, "Run folder (default: runs/gemini-<config>)");
  geminiCmd->add_option(
      "--resume", pretrain.resume, "Continue the run in this folder exactly where it stopped");
  geminiCmd->add_option(
      "--set", pretrain.overrides, "Override a config key, e.g. --set steps=500 (repeatable)");

  RegisterOptions registration;
  auto* registerCmd = cli.add_subcommand(
      "register",
      "Deformable CT-to-CT registration with a GEMINI deformer: warps MOVING (and its labels) "
      "onto FIXED's grid in physical space and reports Jacobian statistics; atlas-based "
      "segmentation by label propagation.\nExample: densa register atlas.nii.gz patient/ -o reg "
      "--model runs/gemini/last.densa --labels atlas-labels.nii.gz");
  registerCmd->add_option("MOVING", registration.moving, "Moving CT (image file or DICOM folder)")
      ->required();
  registerCmd->add_option("FIXED", registration.fixed, "Fixed CT (image file or DICOM folder)")
      ->required();
  registerCmd->add_option("-o,--output", registration.output, "Output folder")->required();
  registerCmd->add_option("--model", registration.model, "A densa pretrain gemini checkpoint")
      ->required();
  registerCmd->add_option("--labels", registration.labels, "Moving label map to propagate");
  registerCmd->add_option("--fixed-labels",
                          registration.fixedLabels,
                          "Fixed label map: report liver Dice before/after");
  registerCmd->add_option(
      "--label-map", registration.labelMap, "Keep and rename label values, e.g. 5:1");
  registerCmd->add_option("--device", registration.device, "cpu, cuda or cuda:N");

  EvaluateOptions evaluate;
  auto* evaluateCmd = cli.add_subcommand(
      "evaluate",
      "Score predicted label maps against references with the LiTS challenge metrics (Dice per "
      "case "
      "and global, VOE, RVD, ASSD, MSD, RMSD, lesion detection, tumour burden) plus HD95 and "
      "surface "
      "Dice, in mm. Cases are matched by id (file name without role words such as segmentation-, "
      "volume-, _pred).\nExample: densa evaluate preds/ labels/ -o eval/");
  evaluateCmd->add_option("PRED", evaluate.predicted, "Predicted label map, or a folder of them")
      ->required();
  evaluateCmd->add_option("GT", evaluate.reference, "Reference label map, or a folder of them")
      ->required();
  evaluateCmd->add_option("-o,--output", evaluate.output, "Report folder (cases.csv, summary.json)")
      ->required();
  evaluateCmd->add_option("--tolerance", evaluate.toleranceMm, "Surface Dice tolerance in mm")
      ->check(CLI::NonNegativeNumber);
  evaluateCmd->add_option("--reference-map",
                          evaluate.referenceMap,
                          "Map reference labels FROM:TO (TO 0..2), others to 0, e.g. 5:1 for a "
                          "TotalSegmentator liver");
  evaluateCmd->add_option("--predicted-map", evaluate.predictedMap, "Map predicted labels FROM:TO");

  ModelInfoOptions modelInfo;
  auto* modelCmd = cli.add_subcommand("model", "Inspect the model architectures Densa ships.");
  modelCmd->require_subcommand(1);
  auto* modelInfoCmd = modelCmd->add_subcommand(
      "info",
      "Print the preset table of an architecture: parameter counts per sub-network and GFLOPs per "
      "512x512 slice and per 8-slice window (GEMINI: per crop).\nExample: densa model info "
      "hdenseunet --preset paper");
  modelInfoCmd->add_option("NAME", modelInfo.name, "Architecture, e.g. hdenseunet")->required();
  modelInfoCmd->add_option("--preset", modelInfo.preset, "Only this preset (paper, small, tiny)");
  modelInfoCmd->add_flag("--json", modelInfo.json, "Machine-readable JSON");
  ModelCreateOptions modelCreate;
  auto* modelCreateCmd =
      modelCmd->add_subcommand("create",
                               "Write a freshly initialised (untrained) checkpoint of an "
                               "architecture and preset, e.g. to start "
                               "training or to test the pipeline.\nExample: densa model create "
                               "hdenseunet --preset tiny -o tiny.densa");
  modelCreateCmd
      ->add_option(
          "NAME",
          modelCreate.name,
          "hdenseunet, dense-unet-2d, dense-unet-3d, coarse-liver, gemini, gemini-unet, adsl")
      ->required();
  modelCreateCmd->add_option("--preset", modelCreate.preset, "paper, small or tiny");
  modelCreateCmd->add_option("-o,--output", modelCreate.output, "Checkpoint file to write")
      ->required();
  modelCreateCmd->add_option("--seed", modelCreate.seed, "Initialisation seed");

  try {
    cli.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = cli.exit(e);
    return code == 0 ? kExitOk : kExitUsage;
  }

  try {
    models::installHostTensorCache();
    models::setThreads(threads);
    if (showVersion) {
      std::cout << versionText();
      return kExitOk;
    }
    if (infoCmd->parsed()) {
      return runInfo(info, std::cout, std::cerr);
    }
    if (convertCmd->parsed()) {
      return runConvert(convert, std::cout, std::cerr);
    }
    if (adslTrainCmd->parsed()) {
      if (adslTrain.runDir.empty() && !adslTrain.resume) {
        adslTrain.runDir =
            std::filesystem::path("runs") /
            ("adsl-" + (adslTrain.config ? adslTrain.config->stem().string() : std::string("run")));
      }
      return runTrainAdsl(adslTrain, std::cout, std::cerr);
    }
    if (indexCmd->parsed()) {
      index.threads = threads;
      index.action = indexAddCmd->parsed()       ? "add"
                     : indexRemoveCmd->parsed()  ? "remove"
                     : indexRebuildCmd->parsed() ? "rebuild"
                                                 : "info";
      (void)indexInfoCmd;
      return runIndex(index, std::cout, std::cerr);
    }
    if (searchCmd->parsed()) {
      search.threads = threads;
      return runSearch(search, std::cout, std::cerr);
    }
    if (trainCmd->parsed()) {
      if (train.runDir.empty() && !train.resume) {
        train.runDir =
            std::filesystem::path("runs") / (train.config ? train.config->stem() : "run");
      }
      return runTrain(train, std::cout, std::cerr);
    }
    if (geminiCmd->parsed()) {
      return runPretrain(pretrain, std::cout, std::cerr);
    }
    if (registerCmd->parsed()) {
      return runRegister(registration, std::cout, std::cerr);
    }
    if (segmentCmd->parsed()) {
      return runSegment(segment, std::cout, std::cerr);
    }
    if (evaluateCmd->parsed()) {
      return runEvaluate(evaluate, std::cout, std::cerr);
    }
    if (modelCreateCmd->parsed()) {
      return runModelCreate(modelCreate, std::cout, std::cerr);
    }
    if (modelInfoCmd->parsed()) {
      return runModelInfo(modelInfo, std::cout, std::cerr);
    }
    if (phantomCmd->parsed()) {
      return runPhantom(phantom, std::cout, std::cerr);
    }
    std::cout << cli.help();
    return kExitUsage;
  } catch (const core::InputError& e) {
    std::cerr << "densa: error: " << e.what() << "\n";
    return kExitBadInput;
  } catch (const core::InvalidArgument& e) {
    std::cerr << "densa: error: " << e.what() << "\n";
    return kExitUsage;
  } catch (const models::ModelError& e) {
    std::cerr << "densa: error: " << e.what() << "\n";
    return kExitBadInput;
  } catch (const std::exception& e) {
    std::cerr << "densa: internal error: " << e.what()
              << "\n(this is a bug; please report it with `densa --version`)\n";
    return kExitInternal;
  }
}

} // namespace densa::app
