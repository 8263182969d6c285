import HavelCore

extension Builder {
    func imageStages() async throws(HavelError) {}
    func resultsOfThisBuild() -> [String] { state.outputs + state.artifacts }
}
